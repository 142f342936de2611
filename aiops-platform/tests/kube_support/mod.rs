//! Support for the Kubernetes actuator tests: a scripted API server behind kube's mocked
//! client ([`api_server`]), real-shaped API objects ([`fixtures`]) and the scenarios
//! ([`scenarios`]) that both the actuator tests and the RBAC test run.

#![allow(dead_code, unreachable_pub)]

pub mod api_server;
pub mod fixtures;
pub mod scenarios;
