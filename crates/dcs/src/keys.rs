//! Patroni's key names under `/<namespace>/<scope>/`.

/// Key paths of one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// `namespace` may be given with or without slashes; Patroni's default is `/service`.
    pub fn new(namespace: &str, scope: &str) -> Keys {
        let ns = namespace.trim_matches('/');
        let prefix = if ns.is_empty() {
            format!("/{scope}/")
        } else {
            format!("/{ns}/{scope}/")
        };
        Keys { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{}", self.prefix, rest)
    }

    pub fn initialize(&self) -> String {
        self.key("initialize")
    }
    pub fn config(&self) -> String {
        self.key("config")
    }
    pub fn leader(&self) -> String {
        self.key("leader")
    }
    pub fn status(&self) -> String {
        self.key("status")
    }
    pub fn history(&self) -> String {
        self.key("history")
    }
    pub fn failover(&self) -> String {
        self.key("failover")
    }
    pub fn sync(&self) -> String {
        self.key("sync")
    }
    pub fn members_prefix(&self) -> String {
        self.key("members/")
    }
    pub fn member(&self, name: &str) -> String {
        self.key(&format!("members/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patroni_layout() {
        let k = Keys::new("/service", "batman");
        assert_eq!(k.leader(), "/service/batman/leader");
        assert_eq!(k.member("pg0"), "/service/batman/members/pg0");
        assert_eq!(Keys::new("/service/", "b").initialize(), "/service/b/initialize");
        assert_eq!(Keys::new("", "b").config(), "/b/config");
    }
}
