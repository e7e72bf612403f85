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
