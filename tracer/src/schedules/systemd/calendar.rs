//! (being written: a stub with the API so the rest compiles)
use jiff::{tz::TimeZone, Timestamp};

#[derive(Clone, Debug, PartialEq)]
pub struct CalendarSpec {
    text: String,
}

impl CalendarSpec {
    pub fn parse(text: &str) -> Result<CalendarSpec, String> {
        Err(format!("`{text}`: not parsed yet"))
    }
    pub fn next_after(&self, _after: Timestamp, _local: &TimeZone) -> Option<Timestamp> {
        None
    }
    pub fn normalized(&self) -> String {
        self.text.clone()
    }
}
