//! Fuzzing the REST body parsers: arbitrary bytes and arbitrary JSON sent to every endpoint that
//! reads a body must get a 2xx/4xx/5xx answer (never a hang or a dropped connection), and a rejected
//! PATCH/PUT must leave the DCS config exactly as it was.

use ferroni_api::{ApiState, SnapshotHandle, serve};
use ferroni_dcs::{Dcs, MemoryStore, NodeIdentity};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const ENDPOINTS: &[(&str, &str)] = &[
    ("PATCH", "/config"),
    ("PUT", "/config"),
    ("POST", "/switchover"),
    ("POST", "/failover"),
    ("DELETE", "/switchover"),
    ("POST", "/restart"),
    ("POST", "/reinitialize"),
    ("POST", "/reload"),
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z_]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                "(ttl|loop_wait|retry_timeout|leader|candidate|pause|postgresql|scheduled_at|force|[a-z]{1,6})",
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn arbitrary_bodies_get_an_answer_and_never_change_config_when_refused() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = MemoryStore::new();
        let identity = NodeIdentity {
            name: "pg1".into(),
            scope: "fuzz".into(),
            namespace: "/service/".into(),
            ttl: 30,
            retry_timeout: Duration::from_secs(5),
        };
        let dcs = Arc::new(store.node(identity));
        let original = json!({"ttl": 30, "loop_wait": 10, "retry_timeout": 10});
        dcs.write_config(&original, None).await.unwrap();
        let state = ApiState::new(SnapshotHandle::default(), dcs.clone())
            .with_validator(Arc::new(|v| {
                ferroni_config::validate_dynamic(v)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }))
            .with_failover_poll(Duration::from_millis(10), Some(Duration::from_millis(50)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(listener, state, std::future::pending()));
        let http = reqwest::Client::new();

        let mut runner = TestRunner::new(Config {
            cases: 200,
            ..Config::default()
        });
        let bodies = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256).boxed(),
            json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()).boxed(),
        ];
        for _ in 0..200 {
            let body = bodies.new_tree(&mut runner).unwrap().current();
            for (method, path) in ENDPOINTS {
                let before = dcs.load().await.unwrap().config;
                let resp = http
                    .request(method.parse().unwrap(), format!("{base}{path}"))
                    .timeout(Duration::from_secs(5))
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "{method} {path} with {:?}: no answer: {e}",
                            String::from_utf8_lossy(&body)
                        )
                    });
                let code = resp.status().as_u16();
                assert!((200..600).contains(&code));
                let after = dcs.load().await.unwrap().config;
                if !(200..300).contains(&code) {
                    assert_eq!(before, after, "{method} {path} answered {code} but changed the config");
                }
                if let Some(cfg) = &after {
                    // Whatever was accepted must still validate.
                    assert!(
                        ferroni_config::validate_dynamic(&cfg.value).is_ok(),
                        "{method} {path} stored {}",
                        cfg.value
                    );
                }
                if before != after {
                    // Reset so every case starts from a valid, known config.
                    dcs.replace_config(&original).await.unwrap();
                }
            }
        }
    });
}
