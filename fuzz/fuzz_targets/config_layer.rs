//! Arbitrary TOML as a configuration layer (what `--config FILE` adds over the defaults), alone
//! and over a minimal valid configuration. For any text, `Config::load` returns, without
//! panicking, either a configuration or an error whose every problem names a key the defaults
//! define (or its `_file` variant), or `config` for text that is not a configuration at all, and
//! says something about it.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sspr_bridge::config::{Config, DEFAULTS, Sources};

const MINIMAL: &str = r#"
[server]
public_url = "https://sspr.example.com"
[directory]
urls = ["ldaps://dc1.example.com:636"]
base_dn = "DC=example,DC=com"
bind_dn = "CN=svc-sspr,OU=Service,DC=example,DC=com"
bind_password = "service-password"
[security]
secret_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
"#;

fuzz_target!(|layer: &str| {
    for layers in [vec![layer], vec![MINIMAL, layer]] {
        let sources = Sources {
            file: None,
            layers: layers.into_iter().map(str::to_owned).collect(),
            environment: false,
        };
        match Config::load(&sources) {
            Ok(config) => {
                // Debug is what the service logs at startup.
                let _ = format!("{config:?}");
            }
            Err(error) => {
                assert!(!error.problems.is_empty(), "an error without a problem");
                for problem in &error.problems {
                    let key = problem.key.as_str();
                    assert!(
                        key == "config"
                            || known_keys().contains(key)
                            || key
                                .strip_suffix("_file")
                                .is_some_and(|k| known_keys().contains(k)),
                        "{key:?} is not a key: {error}"
                    );
                    assert!(!problem.message.trim().is_empty(), "{key}: no message");
                }
                let _ = error.to_string();
            }
        }
    }
});

/// `section.key` for every key in the defaults.
fn known_keys() -> &'static BTreeSet<String> {
    static KEYS: OnceLock<BTreeSet<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let defaults: toml::Table = DEFAULTS.parse().expect("the defaults parse");
        defaults
            .iter()
            .flat_map(|(section, keys)| {
                let keys = keys.as_table().expect("sections only");
                keys.keys().map(move |key| format!("{section}.{key}"))
            })
            .collect()
    })
}
