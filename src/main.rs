//! The `sspr-bridge` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use sspr_bridge::cli::reminders::{self, Batch, BatchArgs};
use sspr_bridge::cli::{self, audit_export, check, healthcheck, registration_codes, report};
use sspr_bridge::config::{Config, ConfigError, SecretKey, Sources};
use sspr_bridge::server;
use sspr_bridge::startup::{self, StartupWait};

#[derive(Parser)]
#[command(
    version,
    about = "Self-service password reset for on-premises Active Directory"
)]
struct Cli {
    /// Configuration file, layered over the built-in defaults (see config/default.toml).
    #[arg(long, short, env = "SSPR_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (applies pending database migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check the configuration and every dependency; exits non-zero if any check fails.
    Check,
    /// Print a new random security.secret_key.
    GenKey,
    /// Probe the running service's /healthz (at loopback on server.listen's port, over HTTPS
    /// when server.tls_cert is set): exit 0 on status 200, else 1 with the reason. For a
    /// container's HEALTHCHECK.
    Healthcheck {
        /// Give up after this long.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Probe /healthz under this base URL instead, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        url: Option<url::Url>,
    },
    /// Export the audit log (sign-ins, registrations, flows, verifications, resets, unlocks,
    /// throttle hits) to standard output.
    Audit {
        /// First day (2026-11-01, UTC) or time (2026-11-01T08:00:00Z) to export.
        #[arg(long, value_parser = audit_export::parse_since)]
        since: std::time::SystemTime,
        #[arg(long, value_enum, default_value = "csv")]
        format: audit_export::Format,
        /// Only the rows about this login, as a person typed it (any case): those of the account
        /// of that sAMAccountName, and those of a typed login that matched no account (stored as
        /// a keyed hash of the text, found by hashing TEXT with security.secret_key).
        #[arg(long, value_name = "TEXT", value_parser = audit_export::parse_login)]
        login: Option<String>,
    },
    /// Issue a one-time registration code for USER (sAMAccountName or UPN), printed once: it
    /// stands in for the step-up at /register, e.g. for the first helpdesk operators. Replaces any
    /// earlier code of the user; audited with the actor `command-line`.
    RegistrationCode {
        /// The account, as its owner signs in.
        user: String,
    },
    /// Email the users in scope who have registered no verification method (to their AD `mail`),
    /// at most once per registration.remind_interval each.
    Remind {
        #[command(flatten)]
        batch: BatchArgs,
    },
    /// Email the users whose AD password expires within one of the given numbers of days, once
    /// per threshold and password, with a link to the reset page.
    NotifyExpiry {
        /// Thresholds in days before the expiry, e.g. 14,7,1.
        #[arg(long, required = true, value_delimiter = ',', value_parser = reminders::parse_day)]
        days: Vec<u32>,
        #[command(flatten)]
        batch: BatchArgs,
    },
    /// Print the rollout figures: users in scope, registered (by method, and stale), never
    /// registered, resets, unlocks, changes and helpdesk actions per day or week by method and
    /// outcome, the top refusal reasons and the users blocked now.
    Report {
        #[arg(long, value_enum, default_value = "table")]
        format: report::Format,
        /// Count the activity from this date (2026-11-01, UTC), time (2026-11-01T08:00:00Z) or
        /// this long ago (30d, 12weeks); the last 30 days if not given.
        #[arg(long, value_parser = report::parse_since)]
        since: Option<report::Since>,
        /// Count the activity per day or per week (Monday to Sunday, UTC).
        #[arg(long, value_enum, default_value = "day")]
        per: report::PerArg,
    },
}

fn main() -> ExitCode {
    let started = Instant::now();
    // Before anything builds a TLS configuration: rustls with ring, the only TLS in this binary.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Command::GenKey = cli.command {
        println!("{}", SecretKey::generate_base64());
        return ExitCode::SUCCESS;
    }
    let sources = Sources {
        file: cli.config.clone(),
        layers: Vec::new(),
        environment: true,
    };
    // Only the commands a container starts beside its DC wait for what the DC provides.
    let loaded = match cli.command {
        Command::Serve | Command::Migrate => startup::load_config(&sources, started),
        _ => Config::load(&sources).map(|c| (c, StartupWait::new(started, Duration::ZERO))),
    };
    let (config, wait) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return config_failure(&cli.command, &e),
    };
    let probe = matches!(cli.command, Command::Healthcheck { .. });
    // The probe's only output is its one line; nothing else needs logging either.
    if !probe {
        // Nothing has installed a subscriber yet, so this cannot fail.
        let _ = sspr_bridge::logging::init(&config.log, std::io::stderr);
    }
    let mut runtime = if probe {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Serve => match server::serve(&config, &wait).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start");
                    ExitCode::FAILURE
                }
            },
            Command::Migrate => match cli::migrate(&config).await {
                Ok(()) => {
                    println!("database {} is up to date", config.database.display_url());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("migration failed: {e}");
                    ExitCode::FAILURE
                }
            },
            Command::Check => {
                let lines = check::run(&config, |line| println!("{line}")).await;
                if lines.iter().any(|l| l.status == check::Status::Fail) {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Command::Audit {
                since,
                format,
                login,
            } => {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                match audit_export::run(&config, since, login.as_deref(), format, &mut out).await {
                    Ok(count) => {
                        eprintln!("{count} audit events exported");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("audit export failed: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::RegistrationCode { user } => {
                let stdout = std::io::stdout();
                match registration_codes::run(&config, &user, &mut stdout.lock()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("no registration code issued: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Remind { batch } => run_batch(&config, &Batch::Remind, &batch).await,
            Command::NotifyExpiry { days, batch } => {
                run_batch(&config, &Batch::NotifyExpiry { days }, &batch).await
            }
            Command::Report { format, since, per } => {
                let stdout = std::io::stdout();
                let since = since.unwrap_or(report::Since::DEFAULT);
                let mut out = std::io::BufWriter::new(stdout.lock());
                match report::run(&config, since, per.into(), format, &mut out).await {
                    Ok(_) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("report failed: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Healthcheck { timeout, url } => {
                let probed = healthcheck::Target::new(&config, url.as_ref());
                match probed {
                    Ok(target) => match target.probe(timeout).await {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(e) => unhealthy(&e),
                    },
                    Err(e) => unhealthy(&e),
                }
            }
            Command::GenKey => unreachable!("handled before the configuration is read"),
        }
    })
}

/// `remind` and `notify-expiry`: fails when a mail could not be sent, so a scheduler notices.
async fn run_batch(config: &Config, batch: &Batch, args: &BatchArgs) -> ExitCode {
    let stdout = std::io::stdout();
    match reminders::run(config, batch, args, &mut stdout.lock()).await {
        Ok(report) if report.failed == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("reminders failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A HEALTHCHECK's answer: 1 is unhealthy (2 is reserved there), with one line of why.
fn unhealthy(why: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("unhealthy: {why}");
    ExitCode::FAILURE
}

fn config_failure(command: &Command, error: &ConfigError) -> ExitCode {
    if let Command::Healthcheck { .. } = command {
        let problems = error
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect::<Vec<_>>();
        return unhealthy(&format!("invalid configuration: {}", problems.join("; ")));
    }
    if let Command::Check = command {
        println!(
            "FAIL  config    {}",
            error.to_string().replace('\n', "\n                ")
        );
    } else {
        eprintln!("{error}");
    }
    ExitCode::from(2)
}
