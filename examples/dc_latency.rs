//! Measures what one password reset costs against a DC: a new LDAPS connection (TCP + TLS), the
//! service bind, a `unicodePwd` replace on an open connection, and the same through sspr-bridge's
//! pooled directory client (lookup + write).
//!
//!     source /tmp/sspr-test-env.sh   # from scripts/env-up
//!     cargo run --release --example dc_latency [ROUNDS]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings, Mod};
use secrecy::SecretString;
use sspr_bridge::config::{Config, Sources};
use sspr_bridge::directory::LdapDirectory;
use sspr_bridge::directory::codec::unicode_pwd_value;
use sspr_bridge::domain::directory::{AccountChange, Directory};
use sspr_bridge::tls::client_config;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set: source /tmp/sspr-test-env.sh"))
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label:<34} n={:<4} p50 {:>7.2} ms   p99 {:>7.2} ms",
        samples.len(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    let (url, admin_dn, admin_pw) = (
        env("SSPR_TEST_LDAPS_URL"),
        env("SSPR_TEST_ADMIN_DN"),
        env("SSPR_TEST_ADMIN_PASSWORD"),
    );
    let tls = client_config(Some(env("SSPR_TEST_CA_FILE").as_ref())).unwrap();

    let (mut connects, mut binds) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let settings = LdapConnSettings::new().set_config(Arc::clone(&tls));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &url).await.unwrap();
        ldap3::drive!(conn);
        connects.push(t.elapsed());
        let t = Instant::now();
        ldap.simple_bind(&admin_dn, &admin_pw)
            .await
            .unwrap()
            .success()
            .unwrap();
        binds.push(t.elapsed());
        let _ = ldap.unbind().await;
    }
    report("LDAPS connect (TCP + TLS)", connects);
    report("service bind", binds);

    // One account, reset over and over on one open connection.
    let sam = format!("lat{:08x}", rand::random::<u32>());
    let dn = format!("CN={sam},CN=Users,{}", env("SSPR_TEST_BASE_DN"));
    let settings = LdapConnSettings::new().set_config(Arc::clone(&tls));
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &url).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(&admin_dn, &admin_pw)
        .await
        .unwrap()
        .success()
        .unwrap();
    let one = |v: &str| HashSet::from([v.as_bytes().to_vec()]);
    ldap.add(
        &dn,
        vec![
            (b"objectClass".to_vec(), one("user")),
            (b"sAMAccountName".to_vec(), one(&sam)),
            (
                b"unicodePwd".to_vec(),
                HashSet::from([unicode_pwd_value("Start-Pass-0!")]),
            ),
            (b"userAccountControl".to_vec(), one("512")),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let mut replaces = Vec::new();
    for i in 0..rounds {
        let value = unicode_pwd_value(&format!("Raw-Replace-{i}-Pw!"));
        let t = Instant::now();
        ldap.modify(
            &dn,
            vec![Mod::Replace(b"unicodePwd".to_vec(), HashSet::from([value]))],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
        replaces.push(t.elapsed());
    }
    report("unicodePwd replace (open conn)", replaces);

    let config = Config::load(&Sources {
        file: None,
        layers: vec![format!(
            "[directory]\nurls = [{url:?}]\nca_file = {:?}\nbase_dn = {:?}\nbind_dn = {admin_dn:?}\n\
             bind_password = {admin_pw:?}\n[security]\nsecret_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"",
            env("SSPR_TEST_CA_FILE"),
            env("SSPR_TEST_BASE_DN"),
        )],
        environment: false,
    })
    .unwrap();
    let directory = LdapDirectory::new(&config.directory).unwrap();
    let _ = directory.probe().await; // warm the pool, as a running service is
    let (mut finds, mut writes) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let t = Instant::now();
        let user = directory.find_user(&sam).await.unwrap().unwrap();
        finds.push(t.elapsed());
        let secret = SecretString::from(format!("Pooled-Write-{i}-Pw!"));
        let t = Instant::now();
        directory
            .write_account(
                &user,
                &AccountChange {
                    new_password: Some(&secret),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        writes.push(t.elapsed());
    }
    report("sspr-bridge find_user (pooled)", finds);
    report("sspr-bridge write_account (pooled)", writes);
    let _ = ldap.delete(&dn).await;
}
