use super::*;

fn policy(min_length: u32, complexity: bool) -> PasswordPolicy {
    PasswordPolicy {
        min_length,
        complexity,
        history_length: 24,
        min_age: Duration::ZERO,
        max_age: Some(Duration::from_secs(42 * 86_400)),
        lockout_threshold: 5,
        lockout_duration: Some(Duration::from_secs(1800)),
        lockout_window: Some(Duration::from_secs(1800)),
        pso: None,
    }
}

fn rules(min_strength: u8) -> PasswordRules {
    PasswordRules {
        banned: Arc::new(BannedList::new(["contoso"])),
        min_strength,
    }
}

const JDOE: AccountNames<'static> = AccountNames {
    sam_account_name: "jdoe",
    display_name: Some("Johnson, Paul-Erik"),
    mail: Some("p.johnson@example.com"),
};

fn broken(password: &str) -> Vec<&'static str> {
    rules(3)
        .check(password, JDOE, &policy(7, true))
        .iter()
        .map(Violation::rule)
        .collect()
}

#[test]
fn requirements_follow_the_policy_and_the_rules() {
    use Requirement::*;
    assert_eq!(
        rules(3).requirements(&policy(7, true)),
        [
            MinLength(7),
            NoControlCharacters,
            Complexity,
            NoNames,
            NotBanned,
            MinStrength(3),
            NotRecent(24)
        ]
    );
    let mut lax = policy(0, false);
    lax.history_length = 0;
    assert_eq!(
        rules(0).requirements(&lax),
        [MinLength(1), NoControlCharacters, NotBanned]
    );
}

#[test]
fn ad_intervals_are_negative_ticks() {
    // What Samba and AD store for 42 days, 30 minutes, 1 day.
    assert_eq!(
        ad_interval(-36_288_000_000_000, true),
        Some(Duration::from_secs(42 * 86_400))
    );
    assert_eq!(
        ad_interval(-18_000_000_000, false),
        Some(Duration::from_secs(1800))
    );
    assert_eq!(
        ad_interval(-864_000_000_000, false),
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(ad_interval(-15, false), Some(Duration::from_nanos(1500)));
    assert_eq!(ad_interval(i64::MIN, false), None);
    assert_eq!(ad_interval(0, true), None);
    assert_eq!(ad_interval(0, false), Some(Duration::ZERO));
}

#[test]
fn a_good_password_breaks_nothing() {
    assert_eq!(broken("Velvet-Harbour-Tram-82"), Vec::<&str>::new());
}

#[test]
fn length_bounds() {
    assert_eq!(
        rules(0).check("Ab1!", JDOE, &policy(7, true)),
        vec![Violation::TooShort { min: 7 }]
    );
    // Empty is too short even where the policy allows it.
    assert_eq!(
        rules(0).check("", JDOE, &policy(0, false)),
        vec![Violation::TooShort { min: 1 }]
    );
    let long = "Aa1!".repeat(65);
    assert_eq!(
        rules(3).check(&long, JDOE, &policy(7, true)),
        vec![Violation::TooLong { max: 256 }]
    );
    assert!(
        rules(0)
            .check(&"Zq8-".repeat(64), JDOE, &policy(7, true))
            .is_empty(),
        "256 is allowed"
    );
    // Characters, not bytes.
    assert!(
        !rules(0)
            .check("Äöü-ßé1", JDOE, &policy(7, true))
            .contains(&Violation::TooShort { min: 7 })
    );
}

#[test]
fn control_characters_are_refused_by_name() {
    // NUL, TAB, LF, CR, BEL, ESC, DEL and the C1 controls NEL and CSI.
    for c in [
        '\0', '\t', '\n', '\r', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}',
    ] {
        for password in [
            format!("Velvet-Harbour{c}Tram-82"),
            format!("{c}Velvet-Harbour-Tram-82"),
            format!("Velvet-Harbour-Tram-82{c}"),
        ] {
            assert!(has_control_characters(&password), "{:?}", c);
            assert_eq!(
                rules(3).check(&password, JDOE, &policy(7, true)),
                [Violation::ControlCharacters],
                "{c:?}"
            );
        }
    }
    // Named along with the other rules broken, in a stable place after the length.
    assert_eq!(
        broken("ab\tcd"),
        ["too_short", "control_characters", "complexity", "too_weak"]
    );
    // Only Cc: spaces, format characters and letters from other scripts are no controls.
    for password in [
        "Velvet Harbour Tram 82",
        "Velvet\u{a0}Harbour\u{2003}Tram-82",
        "Velvet\u{200d}Harbour-Tram-82",
        "Fluwelen-Haven-Tram-82-\u{e9}\u{df}",
        "\u{5149}\u{5e8}-Velvet-Harbour-82",
    ] {
        assert!(!has_control_characters(password), "{password:?}");
        assert!(
            !broken(password).contains(&"control_characters"),
            "{password:?}"
        );
    }
    // Nothing else is judged of a password too long to write.
    let long = format!("{}\0", "Zq8-".repeat(64));
    assert_eq!(
        rules(3).check(&long, JDOE, &policy(7, true)),
        [Violation::TooLong { max: 256 }]
    );
}

#[test]
fn complexity_needs_three_of_five_categories() {
    assert_eq!(categories("abcdefgh"), 1);
    assert_eq!(categories("abcDEF12"), 3);
    assert_eq!(categories("abc def 12"), 2, "a space is no symbol");
    assert_eq!(
        categories("abc€€€12"),
        2,
        "currency signs count for nothing"
    );
    assert_eq!(categories("ÄÖÜäöü12"), 3, "accented letters have a case");
    assert_eq!(
        categories("中文中文ab12"),
        3,
        "letters without case are a category"
    );
    assert_eq!(categories("Ab1!中"), 5);
    assert_eq!(broken("horse staple battery"), vec!["complexity"]);
    let off = rules(0).check("horse staple battery", JDOE, &policy(7, false));
    assert!(off.is_empty(), "{off:?}");
}

#[test]
fn names_are_refused_case_insensitively_when_complexity_is_on() {
    assert_eq!(broken("Velvet-JDOE-Tram-82"), vec!["contains_account_name"]);
    // Display name tokens: "Johnson", "Paul", "Erik".
    assert_eq!(broken("Velvet-paul-Tram-82"), vec!["contains_display_name"]);
    // Tokens under three characters are not looked for; the account name is looked for whole.
    let short = AccountNames {
        sam_account_name: "jd",
        display_name: Some("Li Wu"),
        mail: None,
    };
    assert!(
        rules(0)
            .check("Velvet-jd-Li-Wu-82", short, &policy(7, true))
            .is_empty()
    );
    assert!(
        rules(0)
            .check("Velvet-JDOE-Tram-82", JDOE, &policy(7, false))
            .is_empty()
    );
    assert!(contains_display_name("x#Tab\tName", "a\tname"));
}

#[test]
fn banned_words_are_refused_by_name() {
    assert_eq!(broken("P@ssw0rd2024!")[0], "banned");
    assert_eq!(broken("Velvet-Contoso-2026!"), Vec::<&str>::new());
    assert_eq!(broken("xC0ntoso2026!"), ["banned"]);
}

#[test]
fn weak_passwords_are_too_weak() {
    // Long enough and complex, but the user's own name with the usual decoration.
    assert_eq!(
        rules(3).check("Johnson1!", JDOE, &policy(7, false)),
        vec![Violation::TooWeak { min_strength: 3 }]
    );
    assert!(
        rules(0)
            .check("Johnson1!", JDOE, &policy(7, false))
            .is_empty()
    );
    assert!(broken("Velvet-Harbour-Tram-82").is_empty());
}

#[test]
fn every_broken_rule_is_named() {
    assert_eq!(
        broken("jdoe1"),
        vec![
            "too_short",
            "complexity",
            "contains_account_name",
            "too_weak"
        ]
    );
}

#[test]
fn a_refusal_after_the_checks_is_history_or_age() {
    let mut p = policy(7, true);
    p.min_age = Duration::from_secs(86_400);
    let v = after_write(&p);
    assert_eq!(v.rule(), "history_or_min_age");
    assert_eq!(
        v,
        Violation::HistoryOrMinAge {
            history: 24,
            min_age: Duration::from_secs(86_400)
        }
    );
}
