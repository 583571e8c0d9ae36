//! Reading the layers (defaults, file, extra layers, environment) into the raw sections, with
//! every bad value reported under its own key.

use std::time::Duration;

use super::rules::Checks;
use super::{Config, ConfigError, DEFAULTS, Problem, Raw, Sources};

impl Config {
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        use config::{Environment, File, FileFormat};

        let mut builder =
            config::Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = &sources.file {
            if !path.is_file() {
                return Err(ConfigError::single(
                    "--config",
                    format!("{} does not exist or is not a file", path.display()),
                ));
            }
            builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
        }
        for layer in &sources.layers {
            builder = builder.add_source(File::from_str(layer, FileFormat::Toml));
        }
        if sources.environment {
            builder = builder.add_source(
                Environment::with_prefix("SSPR")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("directory.urls")
                    .with_list_parse_key("server.trusted_proxies")
                    .with_list_parse_key("registration.allowed_networks")
                    .try_parsing(true),
            );
        }
        let builder = default_issuer(builder);
        let mut checks = Checks::default();
        let raw = parse(builder, &mut checks.problems);
        let startup_wait = raw
            .as_ref()
            .map_or(Duration::ZERO, |r| r.server.startup_wait);
        match raw.and_then(|raw| checks.config(raw)) {
            Some(mut config) if checks.problems.is_empty() => {
                config.source = sources.file.clone();
                Ok(config)
            }
            _ => Err(ConfigError {
                problems: checks.problems,
                startup_wait,
            }),
        }
    }
}

/// An empty `registration.totp_issuer` means the organisation's name (`ui.organisation`, else
/// "sspr-bridge"), filled in before the section is deserialised, since the section refuses an
/// empty issuer.
fn default_issuer(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
) -> config::ConfigBuilder<config::builder::DefaultState> {
    let Ok(merged) = builder.build_cloned() else {
        return builder;
    };
    let text = |key: &str| merged.get_string(key).unwrap_or_default();
    if !text("registration.totp_issuer").trim().is_empty() {
        return builder;
    }
    let organisation = text("ui.organisation");
    let name = match organisation.trim() {
        "" => super::ui::DEFAULT_NAME,
        name => name,
    };
    builder
        .clone()
        .set_override("registration.totp_issuer", name)
        .unwrap_or(builder)
}

/// Deserialises the layers into sections. Serde stops at the first bad value, so to report every
/// one, each is noted under its key and replaced by its default before the next attempt; the
/// rules across keys then still run on what is left. `None` when the text is no configuration at
/// all (a syntax error, an unknown key), which is noted under `config`.
fn parse(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    problems: &mut Vec<Problem>,
) -> Option<Raw> {
    use config::{File, FileFormat, Value, ValueKind};

    let defaults = config::Config::builder()
        .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
        .build()
        .expect("the compiled-in defaults parse");
    let mut builder = builder;
    // Each round replaces one more bad value by its default, which parses, so the rounds end;
    // a problem seen twice ends them too.
    loop {
        let error = match builder
            .build_cloned()
            .and_then(config::Config::try_deserialize)
        {
            Ok(raw) => return Some(raw),
            Err(error) => error,
        };
        let problem = Problem::from_layers(error);
        if problems.contains(&problem) {
            return None;
        }
        let default = defaults.get::<Value>(&problem.key).ok().or_else(|| {
            let key = problem.key.strip_suffix("_file")?;
            defaults.get::<Value>(key).ok()?;
            Some(Value::new(None, ValueKind::Nil))
        });
        let retry = match default {
            Some(value) if problem.key.contains('.') => {
                builder.set_override(&problem.key, value).ok()
            }
            _ => None,
        };
        problems.push(problem);
        builder = retry?;
    }
}

impl Problem {
    /// A value that failed to deserialise, under its key (`section.key`, a list's index dropped);
    /// anything else under `config`.
    fn from_layers(error: config::ConfigError) -> Self {
        let whole = error.to_string();
        let (key, message) = match error {
            config::ConfigError::At {
                error,
                key: Some(key),
                origin,
            } => (key, format!("{error}{}", in_origin(origin))),
            config::ConfigError::Type {
                unexpected,
                expected,
                key: Some(key),
                origin,
            } => (
                key,
                format!(
                    "invalid type: {unexpected}, expected {expected}{}",
                    in_origin(origin)
                ),
            ),
            _ => return Self::new("config", whole),
        };
        let key = key.split('[').next().unwrap_or_default();
        if key.matches('.').count() == 1 {
            Self::new(key, message)
        } else {
            Self::new("config", whole)
        }
    }
}

fn in_origin(origin: Option<String>) -> String {
    origin.map(|o| format!(" in {o}")).unwrap_or_default()
}
