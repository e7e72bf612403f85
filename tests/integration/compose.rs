//! compose.yaml cannot run here (no Docker engine): check its shape against what the code expects.

use std::collections::BTreeMap;

use integration_service::config::DEFAULT_TOML;
use serde_yaml::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/compose.yaml"))
        .expect("compose.yaml");
    let mut doc: Value = serde_yaml::from_str(&text).expect("compose.yaml is YAML");
    doc.apply_merge().expect("YAML merge keys resolve");
    doc
}

fn env_of(service: &Value) -> BTreeMap<String, String> {
    let env = service["environment"]
        .as_mapping()
        .expect("environment map");
    env.iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap_or_default().to_owned(),
                v.as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `SS3_KAFKA__BROKERS` → does `[kafka] brokers` exist in config.default.toml?
fn is_config_key(var: &str) -> bool {
    let Some(path) = var.strip_prefix("SS3_") else {
        return var == "DATABASE_URL" || var == "RUST_LOG" || var.starts_with("VAULT_");
    };
    let defaults: toml::Table = DEFAULT_TOML.parse().expect("defaults parse");
    let mut node = toml::Value::Table(defaults);
    for part in path.to_lowercase().split("__") {
        match node.get(part) {
            Some(next) => node = next.clone(),
            None => return false,
        }
    }
    true
}

/// Catches: compose drifting from the code (a role missing, an env var the config does not read).
#[test]
fn compose_has_every_dependency_and_role_with_env_the_config_reads() {
    let doc = compose();
    let services = doc["services"].as_mapping().expect("services");
    for name in [
        "postgres", "kafka", "vault", "migrate", "api", "ingest", "worker",
    ] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    assert!(
        doc["services"]["kafka"]["image"]
            .as_str()
            .unwrap_or_default()
            .starts_with("apache/kafka")
    );
    assert_eq!(
        doc["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"].as_str(),
        Some("broker,controller"),
        "KRaft mode"
    );
    assert_eq!(
        doc["services"]["worker"]["deploy"]["replicas"].as_u64(),
        Some(2)
    );
    for (role, expected) in [("api", "api"), ("ingest", "ingest"), ("worker", "worker")] {
        let command: Vec<&str> = doc["services"][role]["command"]
            .as_sequence()
            .expect("command")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(command, ["serve", "--roles", expected]);
        let env = env_of(&doc["services"][role]);
        for required in ["DATABASE_URL", "SS3_KAFKA__BROKERS", "SS3_ADMIN_TOKEN"] {
            assert!(env.contains_key(required), "{role} lacks {required}");
        }
        for var in env.keys() {
            assert!(
                is_config_key(var),
                "{role}: {var} is not a key of config.default.toml"
            );
        }
    }
    assert_eq!(
        env_of(&doc["services"]["api"])
            .get("SS3_LISTEN_ADDR")
            .map(String::as_str),
        Some("0.0.0.0:8080")
    );
    for dependency in ["postgres", "kafka", "vault", "api"] {
        assert!(
            doc["services"][dependency]["healthcheck"]["test"].is_sequence(),
            "{dependency} has a health check"
        );
    }
}

/// Catches: the master key of the embedded store committed to git (every clone encrypting with a public key), and
/// compose shipping a fixed default key or operator token.
#[test]
fn no_master_key_or_default_credential_is_shipped() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tracked = std::process::Command::new("git")
        .args(["ls-files", "--", ".integration-service"])
        .current_dir(root)
        .output()
        .expect("git ls-files");
    assert!(tracked.status.success());
    assert_eq!(
        String::from_utf8_lossy(&tracked.stdout),
        "",
        "a key file is tracked"
    );
    let ignore = std::fs::read_to_string(format!("{root}/.gitignore")).expect(".gitignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "/.integration-service/"),
        "the key folder is ignored"
    );
    let doc = compose();
    for role in ["migrate", "api", "ingest", "worker"] {
        let env = env_of(&doc["services"][role]);
        assert!(
            !env.contains_key("SS3_SECRETS__MASTER_KEY"),
            "{role}: no master key in compose (secrets live in Vault)"
        );
        let token = env
            .get("SS3_ADMIN_TOKEN")
            .map(String::as_str)
            .unwrap_or_default();
        assert!(
            token.starts_with("${SS3_ADMIN_TOKEN:?"),
            "{role}: the operator token is required, not defaulted: {token}"
        );
    }
}

/// Compose's interpolation of `${VAR}`, `${VAR:-default}` and `${VAR:?message}`, with `shell` as the environment.
fn interpolate(value: &str, shell: &BTreeMap<&str, String>) -> String {
    let (mut out, mut rest) = (String::new(), value);
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("closing brace");
        let expr = &rest[start + 2..end];
        let (name, fallback) = if let Some((name, default)) = expr.split_once(":-") {
            (name, Some(default.to_owned()))
        } else if let Some((name, message)) = expr.split_once(":?") {
            assert!(
                shell.contains_key(name),
                "compose refuses to start: {message}"
            );
            (name, None)
        } else {
            (expr, None)
        };
        out.push_str(&shell.get(name).cloned().or(fallback).unwrap_or_default());
        rest = &rest[end + 1..];
    }
    out + rest
}

fn command_of(service: &Value) -> Vec<String> {
    service["command"]
        .as_sequence()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// Catches: `VAULT_ADDR` / `VAULT_TOKEN` documented as honoured but never read, so the compose stack silently kept
/// its secrets in the embedded store (with the all-zero master key compose shipped).
#[tokio::test]
async fn with_exactly_the_compose_environment_a_signing_secret_created_through_the_api_lands_in_vault()
 {
    use crate::common::process::{ServiceProcess, binary, wait_healthy};
    use crate::common::{ADMIN_TOKEN, TestDb, admin_database_url, vault};
    let (vault_addr, vault_token) = vault::shared();
    let db = TestDb::create().await;
    let pg = url::Url::parse(&admin_database_url()).expect("admin url");
    // Service hostnames become the suite's local servers; the database is this test's own.
    let local = [
        (
            "postgres:5432/integration_service".to_owned(),
            format!(
                "{}:{}/{}",
                pg.host_str().unwrap_or("127.0.0.1"),
                pg.port().unwrap_or(5432),
                db.name
            ),
        ),
        (
            "kafka:9092".to_owned(),
            std::env::var("SS3_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9".into()),
        ),
        ("http://vault:8200".to_owned(), vault_addr.clone()),
        // The service binds a free port and reports it (read back below).
        ("0.0.0.0:8080".to_owned(), "127.0.0.1:0".to_owned()),
    ];
    let shell = BTreeMap::from([("SS3_ADMIN_TOKEN", ADMIN_TOKEN.to_owned())]);
    let doc = compose();
    let environment = |service: &Value| -> BTreeMap<String, String> {
        env_of(service)
            .into_iter()
            .map(|(k, v)| {
                let mut v = interpolate(&v, &shell);
                for (from, to) in &local {
                    v = v.replace(from.as_str(), to);
                }
                if k == "VAULT_TOKEN" && v == "root" {
                    v = vault_token.clone();
                }
                (k, v)
            })
            .collect()
    };
    let dir = tempfile::tempdir().expect("working directory");
    let migrate = &doc["services"]["migrate"];
    let migrated = std::process::Command::new(binary())
        .args(command_of(migrate))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(environment(migrate))
        .current_dir(dir.path())
        .status()
        .expect("run migrate");
    assert!(migrated.success(), "the migrate service failed");
    let api = &doc["services"]["api"];
    assert_eq!(command_of(api), ["serve", "--roles", "api"]);
    let env = environment(api);
    let service = ServiceProcess::spawn_in("api", &env, "compose-api", Some(dir.path()));
    let base = service.api_url(std::time::Duration::from_secs(30)).await;
    wait_healthy(
        &format!("{base}/health"),
        std::time::Duration::from_secs(30),
    )
    .await;

    let created = crate::common::Api::new(&base, ADMIN_TOKEN)
        .create_subscription(
            "store-compose",
            "http://93.184.216.34/hook",
            &["order.placed"],
        )
        .await;
    let id = created.subscription.subscription_id;
    let secret = created.signing_secret;
    let mount = env
        .get("SS3_VAULT__MOUNT")
        .cloned()
        .unwrap_or_else(|| "ss3/kv".into());
    let defaults: toml::Table = DEFAULT_TOML.parse().expect("defaults");
    let prefix = defaults["vault"]["prefix"].as_str().expect("vault.prefix");
    let stored: serde_json::Value = vaultrs::kv2::read(
        &vault::client(&vault_addr, &vault_token),
        &mount,
        &format!("{prefix}/webhook/{id}/secret"),
    )
    .await
    .expect("the signing secret is in Vault at the documented path");
    assert_eq!(stored["value"], secret);
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
    let embedded: i64 = sqlx::query_scalar("SELECT count(*) FROM encrypted_secrets")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(embedded, 0, "nothing in the embedded store");
    assert!(
        !dir.path().join(".integration-service").exists(),
        "no key file was generated"
    );
}
