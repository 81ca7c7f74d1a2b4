//! uid -> user name, from /etc/passwd as it is on this host.
use foldhash::HashMap;

#[derive(Default, Clone, Debug)]
pub struct UserNames(HashMap<u32, String>);

impl UserNames {
    pub fn load() -> Self {
        std::fs::read_to_string("/etc/passwd")
            .map(|s| Self::parse(&s))
            .unwrap_or_default()
    }

    pub fn parse(passwd: &str) -> Self {
        let mut m = HashMap::default();
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 3 {
                if let Ok(uid) = f[2].parse() {
                    m.entry(uid).or_insert_with(|| f[0].to_string());
                }
            }
        }
        Self(m)
    }

    pub fn into_map(self) -> std::collections::BTreeMap<u32, String> {
        self.0.into_iter().collect()
    }

    pub fn from_map(m: std::collections::BTreeMap<u32, String>) -> Self {
        Self(m.into_iter().collect())
    }

    pub fn name(&self, uid: u32) -> String {
        self.0.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_passwd() {
        let u = super::UserNames::parse(
            "root:x:0:0:root:/root:/bin/bash\nbad\nbob:x:1000:1000::/home/bob:/bin/sh\n",
        );
        assert_eq!(u.name(0), "root");
        assert_eq!(u.name(1000), "bob");
        assert_eq!(u.name(7), "7");
    }
}
