//! The sections of the site. Each page belongs to one, whose start page the language switch and
//! "start again" links lead to, and whose bearer cookie its forms are bound to.

/// The helpdesk's pages, for operators.
pub const HELPDESK: &str = "/helpdesk";

pub const SECTIONS: [&str; 5] = ["/register", "/reset", "/unlock", HELPDESK, "/change"];

/// The section a path belongs to (`/` for none).
pub fn section(path: &str) -> &'static str {
    SECTIONS
        .into_iter()
        .find(|s| {
            path.strip_prefix(s)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .unwrap_or("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_belong_to_their_section() {
        assert_eq!(section("/reset/verify"), "/reset");
        assert_eq!(section("/unlock"), "/unlock");
        assert_eq!(section("/register/remove/totp"), "/register");
        assert_eq!(section("/resets"), "/");
        assert_eq!(section("/helpdesk/user/reset"), "/helpdesk");
    }
}
