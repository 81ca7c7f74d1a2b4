//! The jobs a tracker holds, by index (the order of the forks that started them). A
//! long attach lets finished jobs go once they are reported (`Tracker::evict`): their
//! index stays taken and finds nothing, so the indices of the others never move.
use std::{collections::BTreeSet, ops::Index};

use foldhash::HashMap;

use super::job::Job;

/// Jobs are looked up by index several times per event (a B-tree walk was a tenth of
/// a replay); the indices are also kept in order, for the walks in start order. A job
/// is boxed: it is about 400 bytes, and the table holds thousands, so each growth of
/// the table moved megabytes into fresh pages (a seventh of a following tracer's CPU,
/// with a job per process, went to `push`).
#[derive(Default)]
pub struct Jobs {
    held: HashMap<usize, Box<Job>>,
    order: BTreeSet<usize>,
    next: usize,
}

impl Jobs {
    pub fn get(&self, idx: usize) -> Option<&Job> {
        self.held.get(&idx).map(|j| &**j)
    }

    pub(super) fn get_mut(&mut self, idx: usize) -> Option<&mut Job> {
        self.held.get_mut(&idx).map(|j| &mut **j)
    }

    /// The index the next job gets.
    pub(super) fn next_index(&self) -> usize {
        self.next
    }

    pub(super) fn push(&mut self, job: Job) -> usize {
        let idx = self.next;
        self.held.insert(idx, Box::new(job));
        self.order.insert(idx);
        self.next += 1;
        idx
    }

    /// Take back a job that was not one (a daemon's own fork); the latest one's index
    /// and id are given to the next job.
    pub(super) fn withdraw(&mut self, idx: usize) -> Option<Job> {
        let job = self.remove(idx)?;
        if idx + 1 == self.next {
            self.next = idx;
        }
        Some(job)
    }

    pub(super) fn remove(&mut self, idx: usize) -> Option<Job> {
        self.order.remove(&idx);
        self.held.remove(&idx).map(|j| *j)
    }

    /// Jobs started since the trace began, held or let go.
    pub fn started(&self) -> usize {
        self.next
    }

    /// Jobs held now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Held jobs in index order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Job> {
        self.indexed().map(|(_, j)| j)
    }

    /// Held jobs with their indices, in index order.
    pub fn indexed(&self) -> impl DoubleEndedIterator<Item = (usize, &Job)> {
        self.order.iter().map(|&i| (i, &*self.held[&i]))
    }

    /// The indices of the held jobs, in order.
    pub fn indices(&self) -> Vec<usize> {
        self.order.iter().copied().collect()
    }

    /// Held jobs from the first that started at or after `ts`. Jobs are indexed in
    /// the order their forks were seen, which is their start order, so this is a
    /// binary search (over the index space, since let-go indices leave holes).
    pub fn starting_from(&self, ts: u64) -> impl Iterator<Item = (usize, &Job)> {
        let (mut lo, mut hi) = (0usize, self.next);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.order.range(mid..).next() {
                Some(&k) if self.held[&k].start_ns < ts => lo = k + 1,
                _ => hi = mid,
            }
        }
        self.order.range(lo..).map(|&i| (i, &*self.held[&i]))
    }
}

/// Like a slice: for call sites that hold an index of a job they know is held.
impl Index<usize> for Jobs {
    type Output = Job;

    fn index(&self, idx: usize) -> &Job {
        match self.held.get(&idx) {
            Some(j) => j,
            None => panic!("job index {idx} is not held"),
        }
    }
}
