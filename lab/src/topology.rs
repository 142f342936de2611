//! The topologies the lab runs: the built-in food-delivery one (each service a process of this
//! very program, `aiods-lab serve <name>-service`), or a file — where a command written for
//! the old `aiops serve` is pointed at this program instead.

use std::path::Path;

use aiops_platform::config::{ConfigError, Topology};

use crate::serve::SERVICES;

/// The five services of the built-in topology: name, routes, depends_on.
const BUILT_IN: [(&str, &str, &str); 5] = [
    ("consumer", r#"["/consumers"]"#, "[]"),
    ("kitchen", r#"["/tickets", "/restaurants"]"#, "[]"),
    ("accounting", r#"["/authorizations"]"#, "[]"),
    ("notification", r#"["/notifications"]"#, "[]"),
    (
        "order",
        r#"["/orders"]"#,
        r#"["consumer", "kitchen", "accounting", "notification"]"#,
    ),
];

/// How the built-in topology is described in reports.
pub const BUILT_IN_NAME: &str =
    "built-in food-delivery (order, consumer, kitchen, accounting, notification)";

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The built-in topology: the five food-delivery services, each run as
/// `<exe> serve <name>-service`, data in `data_dir`. Calls between services go through the
/// platform's gateway, which holds them while a dependency restarts, so the chassis client's
/// circuit breaker is off (`AIODS_CLIENT__BREAKER_FAILURES=0`): an open breaker would refuse
/// for 2 s the calls the gateway would have held for the ~100 ms of a restart.
/// `backoff_reset_ms` shortens the time after which a crash counts as a first one again
/// (`aiods-lab mttr` spaces its failures just past it); `None` keeps the platform's default.
pub fn built_in_topology(
    exe: &Path,
    data_dir: &Path,
    backoff_reset_ms: Option<u64>,
) -> Result<Topology, ConfigError> {
    let exe = exe.to_string_lossy();
    let mut t = format!(
        "[platform]\nlisten = \"127.0.0.1:0\"\ndata_dir = {}\n\n",
        toml_str(&data_dir.to_string_lossy())
    );
    let reset = backoff_reset_ms
        .map(|ms| format!("backoff_reset_ms = {ms}\n"))
        .unwrap_or_default();
    for (name, routes, deps) in BUILT_IN {
        t.push_str(&format!(
            "[[service]]\nname = \"{name}\"\ncommand = [{}, \"serve\", \"{name}-service\"]\n\
             routes = {routes}\ndepends_on = {deps}\n\
             [service.recovery]\nrestart_budget = 1000\n{reset}\
             [service.env]\nAIODS_DB__URL = \"sqlite://{{data_dir}}/{name}.db?mode=rwc\"\n\
             AIODS_CLIENT__BREAKER_FAILURES = \"0\"\n\n",
            toml_str(&exe)
        ));
    }
    Topology::parse(&t)
}

/// Points commands written for the removed `aiops serve <service>` at `exe serve <service>`
/// (this program serves the same five services), so topology files of the demo keep loading;
/// answers one note per command changed, for the user to update the file.
pub fn adopt_old_serve_commands(topology: &mut Topology, exe: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    for s in &mut topology.services {
        let is_aiops = s.command.first().is_some_and(|c| {
            Path::new(c)
                .file_name()
                .is_some_and(|n| n == "aiops" || n == "aiops.exe")
        });
        let serves_example = s.command.get(1).is_some_and(|v| v == "serve")
            && s.command.get(2).is_some_and(|name| {
                SERVICES
                    .iter()
                    .any(|known| known == name || known.strip_suffix("-service") == Some(name))
            });
        if is_aiops && serves_example {
            let old = s.command.join(" ");
            if let Some(first) = s.command.first_mut() {
                *first = exe.to_string_lossy().into_owned();
            }
            notes.push(format!(
                "service {:?}: `{old}` — `aiops serve` moved to `aiods-lab serve`; running `{}` \
                 (update the topology file to silence this note)",
                s.name,
                s.command.join(" ")
            ));
        }
    }
    notes
}

/// Which variant of the food-delivery saga the services run (`--saga`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Saga {
    /// Orchestrated over HTTP by the order service (the seed's use case 1, sections 13.1–13.3).
    #[default]
    Http,
    /// Choreographed by events over NATS JetStream (the seed's use case 2, sections 13.4–13.6).
    Events,
}

/// Runs every started service of `topology` in the event-driven variant, on the broker at
/// `url` (`AIODS_SAGA__MODE=events`, `AIODS_MESSAGING__URL`; the chassis's ack wait, 3 s,
/// gives a killed instance's messages back to the others).
pub fn use_events(topology: &mut Topology, url: &str) {
    for s in topology
        .services
        .iter_mut()
        .filter(|s| !s.command.is_empty())
    {
        s.env.insert("AIODS_SAGA__MODE".into(), "events".into());
        s.env.insert("AIODS_MESSAGING__URL".into(), url.into());
    }
}

/// Every gateway route of the topology as `(prefix, service)`.
pub fn routes(topology: &Topology) -> Vec<(String, String)> {
    topology
        .services
        .iter()
        .flat_map(|s| s.routes.iter().map(|r| (r.clone(), s.name.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_topology_parses() {
        let t =
            built_in_topology(Path::new("/x/aiods-lab"), Path::new("/tmp/d"), None).expect("valid");
        assert_eq!(t.services.len(), 5);
        let order = t
            .services
            .iter()
            .find(|s| s.name == "order")
            .expect("order");
        assert_eq!(order.command, ["/x/aiods-lab", "serve", "order-service"]);
        assert_eq!(order.depends_on.len(), 4);
        assert!(routes(&t).contains(&("/orders".to_owned(), "order".to_owned())));
        assert!(built_in_topology(Path::new("/x/lab"), Path::new("/tmp/d"), Some(1000)).is_ok());
    }

    #[test]
    fn the_event_driven_variant_sets_every_started_service_on_the_broker() {
        let mut t =
            built_in_topology(Path::new("/x/aiods-lab"), Path::new("/tmp/d"), None).expect("valid");
        use_events(&mut t, "nats://127.0.0.1:4222");
        for s in &t.services {
            assert_eq!(s.env["AIODS_SAGA__MODE"], "events", "{}", s.name);
            assert_eq!(s.env["AIODS_MESSAGING__URL"], "nats://127.0.0.1:4222");
        }
    }

    #[test]
    fn old_aiops_serve_commands_are_adopted() {
        let mut t = Topology::parse(
            r#"
[[service]]
name = "order"
command = ["/usr/local/bin/aiops", "serve", "order-service"]
routes = ["/orders"]
[[service]]
name = "py"
command = ["python3", "serve", "order-service"]
[[service]]
name = "other"
command = ["aiops", "serve", "billing"]
"#,
        )
        .expect("valid");
        let notes = adopt_old_serve_commands(&mut t, Path::new("/opt/aiods-lab"));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("aiods-lab serve"), "{notes:?}");
        assert_eq!(
            t.services[0].command,
            ["/opt/aiods-lab", "serve", "order-service"]
        );
        assert_eq!(t.services[1].command[0], "python3");
        assert_eq!(t.services[2].command[0], "aiops");
    }
}
