//! The OpenAPI 3.1 document of the management API under `/api/v1`, served at `/openapi.json`.
//!
//! Each route is documented where it is declared (`utoipa_axum::routes!` registers the handler
//! and its description together), so the document lists exactly the routes the router has.
//! This module adds what every `/api/v1` operation shares: the bearer token, and the problem
//! responses the token check and the router give.

use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use crate::common::problem::Problem;

/// The name of the bearer-token security scheme.
pub const BEARER: &str = "bearer";

/// The document's skeleton: info, tags, the problem schema and [`ApiShared`].
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "aiops management API", description = "The platform's management API: telemetry, incidents, the dashboard's series. Every route takes `Authorization: Bearer <AIOPS_API_TOKEN>` and answers errors as RFC 7807 `application/problem+json`."),
    components(schemas(Problem)),
    modifiers(&ApiShared),
    tags(
        (name = "telemetry", description = "What services sent: traces, logs, metrics, exceptions"),
        (name = "incidents", description = "Incidents, their actions and the MTTD/MTTR report"),
        (name = "dashboard", description = "Series the dashboard draws"),
        (name = "platform", description = "The platform itself"),
    )
)]
pub struct PlatformApi;

/// Adds the bearer scheme and the shared responses to every operation (run after the routes
/// are merged in: see [`finish`]).
pub struct ApiShared;

impl Modify for ApiShared {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The problem responses every `/api/v1` operation can get besides its own: (status, what).
pub const SHARED_PROBLEMS: [(u16, &str); 3] = [
    (401, "Missing or wrong bearer token"),
    (
        408,
        "The request took longer than the platform's request timeout",
    ),
    (500, "An internal error"),
];

/// Marks every operation as taking the bearer token and documents [`SHARED_PROBLEMS`] on each
/// (where the operation does not document that status itself).
pub fn finish(api: &mut OpenApi) {
    use utoipa::ToSchema as _;
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(Problem::name())))
                    .build(),
            )
            .build()
    };
    for item in api.paths.paths.values_mut() {
        for op in [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            op.security = Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]);
            for (status, what) in SHARED_PROBLEMS {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::T(problem(what)));
            }
        }
    }
}
