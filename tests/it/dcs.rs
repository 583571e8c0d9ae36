//! The second domain controller. `scripts/test` (and `scripts/env-up`) join DC2 to DC1's domain
//! (`scripts/lib/dc.sh`): same accounts, passwords, policy and CA, its own address and
//! certificate. Every other test uses DC1 only.
//!
//! Nothing replicates between the two by itself (the DCs run no replication service and have no
//! DNS to find each other): a change made on one DC reaches the other only when a test calls
//! [`replicate`], so "not there yet" is certain, not a race against a timer. In real AD a change
//! reaches the other DCs of a site after some 15 s (change notification), other sites after
//! minutes; a test stands on either side of that with `replicate`.
//!
//! A test that uses DC2 holds [`exclusive`] for its whole run: it may stop DC2, replicate to it,
//! or rely on something not having reached it yet, and any of these breaks another such test
//! running at the same time, in this test run or in another one against the same environment
//! (engineers running tests side by side). Only DC2 can be stopped: ~160 tests use DC1
//! concurrently.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};

use ldap3::{Mod, Scope};
use sspr_bridge::directory::codec::unicode_pwd_value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Mutex, MutexGuard};

pub use crate::harness::bind_at;
use crate::harness::{self, admin_at, env, try_connect_at};

/// One of the two test DCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dc {
    Dc1,
    Dc2,
}

impl Dc {
    /// Its LDAPS URL, verified with `SSPR_TEST_CA_FILE` like DC1's.
    pub fn url(self) -> String {
        match self {
            Dc::Dc1 => env("SSPR_TEST_LDAPS_URL"),
            Dc::Dc2 => env("SSPR_TEST_DC2_LDAPS_URL"),
        }
    }

    /// Its name for `scripts/dc-ctl`.
    fn name(self) -> &'static str {
        match self {
            Dc::Dc1 => "dc1",
            Dc::Dc2 => "dc2",
        }
    }
}

/// DC2's LDAPS URL (`SSPR_TEST_DC2_LDAPS_URL`).
pub fn dc2_url() -> String {
    Dc::Dc2.url()
}

static DC2: Mutex<()> = Mutex::const_new(());
/// Set while a test has DC2 stopped, so that [`Exclusive`] can start it again if that test fails.
static DC2_STOPPED: AtomicBool = AtomicBool::new(false);
/// Set while a test has DC2 frozen, so that [`Exclusive`] can thaw it if that test fails.
static DC2_FROZEN: AtomicBool = AtomicBool::new(false);

/// The right to use DC2 for as long as it lives (see the module documentation).
pub struct Exclusive {
    _guard: MutexGuard<'static, ()>,
    /// Holds the lock across processes: `flock` on a file in DC2's directory, kept by a `cat`
    /// that ends when its stdin closes (when this is dropped, or the test process dies).
    _across_processes: tokio::process::Child,
}

impl Drop for Exclusive {
    /// A test that panicked between [`stop_dc`] and [`start_dc`] must not leave DC2 down for the
    /// next one. Blocking is fine here: it happens only then, and the lock is still held.
    fn drop(&mut self) {
        for (flag, undo) in [(&DC2_FROZEN, "thaw"), (&DC2_STOPPED, "start")] {
            if !flag.swap(false, Ordering::SeqCst) {
                continue;
            }
            match std::process::Command::new(dc_ctl())
                .args([undo, "dc2"])
                .output()
            {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!(
                    "could not {undo} DC2 again: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("could not run {}: {e}", dc_ctl()),
            }
        }
    }
}

/// Waits until no other test uses DC2, in this process or another, then holds it until the
/// guard is dropped.
pub async fn exclusive() -> Exclusive {
    let guard = DC2.lock().await;
    let lock_file = format!("{}/.tests-exclusive.lock", env("SSPR_TEST_DC2_DIR"));
    let mut holder = tokio::process::Command::new("flock")
        .args(["--exclusive", "--no-fork", &lock_file])
        .args(["sh", "-c", "echo locked && exec cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("flock (util-linux)");
    let mut answer = String::new();
    BufReader::new(holder.stdout.take().expect("piped"))
        .read_line(&mut answer)
        .await
        .expect("flock answers");
    assert_eq!(answer.trim(), "locked", "flock {lock_file}");
    Exclusive {
        _guard: guard,
        _across_processes: holder,
    }
}

/// Stops DC2's samba (its whole process group); returns once its ports are closed. DC1 cannot be
/// stopped: every other test runs against it at the same time.
pub async fn stop_dc(which: Dc) {
    assert_eq!(
        which,
        Dc::Dc2,
        "only DC2 can be stopped: the other tests use DC1 concurrently"
    );
    assert_held();
    DC2_STOPPED.store(true, Ordering::SeqCst);
    dc_ctl_run(&["stop", which.name()]).await;
}

/// Kills DC2's samba (its whole process group) with SIGKILL, as a crash would: no shutdown, and
/// a write in progress is cut off. Returns once its processes are gone; [`start_dc`] brings it
/// back.
pub async fn kill_dc(which: Dc) {
    assert_eq!(which, Dc::Dc2, "only DC2 can be killed");
    assert_held();
    DC2_STOPPED.store(true, Ordering::SeqCst);
    dc_ctl_run(&["kill", which.name()]).await;
}

/// Freezes DC2 (SIGSTOP): it keeps its port and its connections but answers nothing, as a hung
/// server or a link that drops packets does. [`thaw_dc`] lets it go on where it stopped.
pub async fn freeze_dc(which: Dc) {
    assert_eq!(which, Dc::Dc2, "only DC2 can be frozen");
    assert_held();
    DC2_FROZEN.store(true, Ordering::SeqCst);
    dc_ctl_run(&["freeze", which.name()]).await;
}

/// Lets a frozen DC2 run again (SIGCONT).
pub async fn thaw_dc(which: Dc) {
    dc_ctl_run(&["thaw", which.name()]).await;
    DC2_FROZEN.store(false, Ordering::SeqCst);
}

/// Starts a stopped DC again and waits until it answers an authenticated LDAPS search (about a
/// second); a DC that runs is left alone.
pub async fn start_dc(which: Dc) {
    dc_ctl_run(&["start", which.name()]).await;
    if which == Dc::Dc2 {
        DC2_STOPPED.store(false, Ordering::SeqCst);
    }
}

/// Copies what changed in the domain partition on `from` to `to`, now (about 0.4 s): what AD's
/// replication would do after some seconds or minutes. Both DCs must run.
pub async fn replicate(from: Dc, to: Dc) {
    assert_ne!(from, to, "replicate between two different DCs");
    assert_held();
    dc_ctl_run(&["replicate", from.name(), to.name()]).await;
}

/// Whether the object `dn` exists on the DC at `url` (searched as Administrator).
pub async fn exists_at(url: &str, dn: &str) -> bool {
    let mut ldap = admin_at(url).await;
    let ldap3::SearchResult(entries, result) = ldap
        .search(dn, Scope::Base, "(objectClass=*)", vec!["1.1"])
        .await
        .unwrap_or_else(|e| panic!("search {dn} at {url}: {e}"));
    let found = match result.rc {
        0 => !entries.is_empty(),
        32 => false, // noSuchObject
        _ => panic!("search {dn} at {url}: {result}"),
    };
    let _ = ldap.unbind().await;
    found
}

/// Resets the password of `dn` on the DC at `url` as Administrator (an administrative reset of
/// unicodePwd, as the service does).
pub async fn set_password_at(url: &str, dn: &str, password: &str) {
    harness::remember_secret("password", password);
    let mut ldap = admin_at(url).await;
    ldap.modify(
        dn,
        vec![Mod::Replace(
            b"unicodePwd".to_vec(),
            HashSet::from([unicode_pwd_value(password)]),
        )],
    )
    .await
    .and_then(ldap3::LdapResult::success)
    .unwrap_or_else(|e| panic!("reset the password of {dn} at {url}: {e}"));
    let _ = ldap.unbind().await;
}

/// Catches the commonest mistake, a test that forgot [`exclusive`]; it cannot tell which test
/// holds the lock.
fn assert_held() {
    assert!(
        DC2.try_lock().is_err(),
        "hold dcs::exclusive() while stopping DC2 or replicating"
    );
}

fn dc_ctl() -> String {
    std::env::var("SSPR_TEST_DC_CTL")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dc-ctl").to_owned())
}

/// Runs `scripts/dc-ctl ARGS`; it finds the DCs through `SSPR_TEST_DC1_DIR` / `SSPR_TEST_DC2_DIR`.
async fn dc_ctl_run(args: &[&str]) {
    let out = tokio::process::Command::new(dc_ctl())
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", dc_ctl()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}): {}{}",
        dc_ctl(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ----------------------------------------------------------------- the environment itself

#[tokio::test]
async fn a_user_made_on_dc1_reaches_dc2_only_when_replicated() {
    let _dc2 = exclusive().await;
    let user = harness::create_user("dcs").await;
    assert!(
        !exists_at(&dc2_url(), &user.dn).await,
        "nothing replicates by itself"
    );

    replicate(Dc::Dc1, Dc::Dc2).await;

    assert!(exists_at(&dc2_url(), &user.dn).await);
    assert_eq!(bind_at(&dc2_url(), &user.dn, &user.password).await, Ok(()));
}

#[tokio::test]
async fn a_password_reset_on_dc1_binds_on_dc2_only_after_replication() {
    let _dc2 = exclusive().await;
    let user = harness::create_user("dcs").await;
    replicate(Dc::Dc1, Dc::Dc2).await;
    let new_password = format!("Replicated-{}-Pw2!", rand::random::<u16>());

    set_password_at(&Dc::Dc1.url(), &user.dn, &new_password).await;

    assert_eq!(
        bind_at(&Dc::Dc1.url(), &user.dn, &new_password).await,
        Ok(())
    );
    let (rc, _) = bind_at(&dc2_url(), &user.dn, &new_password)
        .await
        .expect_err("DC2 does not know the new password yet");
    assert_eq!(rc, 49, "invalidCredentials");
    assert_eq!(
        bind_at(&dc2_url(), &user.dn, &user.password).await,
        Ok(()),
        "DC2 still takes the old one"
    );

    replicate(Dc::Dc1, Dc::Dc2).await;

    assert_eq!(bind_at(&dc2_url(), &user.dn, &new_password).await, Ok(()));
    let (rc, _) = bind_at(&dc2_url(), &user.dn, &user.password)
        .await
        .expect_err("the old password is gone on DC2 too");
    assert_eq!(rc, 49, "invalidCredentials");
}

#[tokio::test]
async fn a_stopped_dc2_refuses_connections_and_answers_once_started() {
    let _dc2 = exclusive().await;

    stop_dc(Dc::Dc2).await;

    match try_connect_at(&dc2_url()).await {
        Err(ldap3::LdapError::Io { source }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        Err(e) => panic!("expected connection refused, got {e}"),
        Ok(_) => panic!("DC2 answered while stopped"),
    }

    start_dc(Dc::Dc2).await;

    assert_eq!(
        bind_at(
            &dc2_url(),
            &env("SSPR_TEST_ADMIN_DN"),
            &env("SSPR_TEST_ADMIN_PASSWORD")
        )
        .await,
        Ok(())
    );
}
