//! The chassis's own error responses, documented on every operation of a service's OpenAPI.
//!
//! Whatever a handler documents, the chassis can answer any operation with problem+json of its
//! own: 400 when axum rejects a path parameter, a query string or a JSON body it cannot parse;
//! 413, 415 and 422 for a body too large, of the wrong content type, or of the wrong shape;
//! 500 for a panic or an internal error. [`document_chassis_problems`] adds each of those an
//! operation can get (and does not already document) as a reference to a shared response, so
//! services document them without per-handler work.

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};

use crate::error::{PROBLEM_JSON, ProblemDetails};

/// One problem response the chassis may give, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChassisProblem {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The name of the shared response in `components.responses`.
    pub(crate) name: &'static str,
    /// What it means.
    pub(crate) description: &'static str,
    /// Which operations can get it.
    pub(crate) applies: Applies,
}

/// Which operations can get a [`ChassisProblem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applies {
    /// Every operation.
    Always,
    /// Operations with path or query parameters, or a request body.
    WithInput,
    /// Operations with a request body.
    WithBody,
}

/// The problem responses of the chassis.
pub(crate) const CHASSIS_PROBLEMS: [ChassisProblem; 5] = [
    ChassisProblem {
        status: 400,
        name: "ChassisBadRequest",
        description: "Bad request: a path parameter, query string or body the service cannot parse",
        applies: Applies::WithInput,
    },
    ChassisProblem {
        status: 413,
        name: "ChassisPayloadTooLarge",
        description: "The body is larger than the service accepts (`AIODS_BODY_LIMIT`)",
        applies: Applies::WithBody,
    },
    ChassisProblem {
        status: 415,
        name: "ChassisUnsupportedMediaType",
        description: "The body is not of the content type the operation takes",
        applies: Applies::WithBody,
    },
    ChassisProblem {
        status: 422,
        name: "ChassisUnprocessable",
        description: "The body is well-formed but does not have the shape the operation takes",
        applies: Applies::WithBody,
    },
    ChassisProblem {
        status: 500,
        name: "ChassisInternalError",
        description: "An internal error or a panic; the problem carries no internals",
        applies: Applies::Always,
    },
];

/// The statuses the chassis may answer an operation with, given what it takes.
pub(crate) fn problems_for(has_params: bool, has_body: bool) -> Vec<ChassisProblem> {
    CHASSIS_PROBLEMS
        .into_iter()
        .filter(|p| match p.applies {
            Applies::Always => true,
            Applies::WithInput => has_params || has_body,
            Applies::WithBody => has_body,
        })
        .collect()
}

/// Adds the chassis's problem responses to every operation of `api`, each where it applies
/// and the operation does not already document that status, with the problem schema and the
/// shared responses in `components`.
pub(crate) fn document_chassis_problems(api: &mut OpenApi) {
    let components = api.components.get_or_insert_with(Default::default);
    let (schema_name, schema) = problem_schema();
    components.schemas.entry(schema_name).or_insert(schema);
    for p in CHASSIS_PROBLEMS {
        components
            .responses
            .entry(p.name.to_owned())
            .or_insert_with(|| RefOr::T(problem_response(p.description)));
    }
    for item in api.paths.paths.values_mut() {
        let shared_params = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
        for op in operations(item) {
            let has_params = shared_params || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let has_body = op.request_body.is_some();
            for p in problems_for(has_params, has_body) {
                op.responses
                    .responses
                    .entry(p.status.to_string())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(p.name)));
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
        item.query.as_mut(),
    ]
    .into_iter()
    .flatten()
    .chain(item.additional_operations.values_mut())
}

fn problem_schema() -> (String, RefOr<utoipa::openapi::schema::Schema>) {
    use utoipa::{PartialSchema as _, ToSchema as _};
    (
        ProblemDetails::name().into_owned(),
        ProblemDetails::schema(),
    )
}

fn problem_response(description: &str) -> Response {
    use utoipa::ToSchema as _;
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ProblemDetails::name())))
                .build(),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(has_params: bool, has_body: bool) -> Vec<u16> {
        problems_for(has_params, has_body)
            .iter()
            .map(|p| p.status)
            .collect()
    }

    #[test]
    fn an_operation_without_input_can_only_fail_inside() {
        assert_eq!(statuses(false, false), [500]);
    }

    #[test]
    fn parameters_add_400_and_a_body_adds_the_body_rejections() {
        assert_eq!(statuses(true, false), [400, 500]);
        assert_eq!(statuses(false, true), [400, 413, 415, 422, 500]);
    }

    #[test]
    fn documented_statuses_are_kept_and_the_rest_added() {
        #[utoipa::path(post, path = "/items/{id}",
            params(("id" = i64, Path, description = "id")),
            request_body = String,
            responses((status = 201, description = "made"), (status = 422, description = "mine")))]
        #[allow(dead_code)]
        async fn make() {}
        #[derive(utoipa::OpenApi)]
        #[openapi(paths(make))]
        struct Api;
        let mut api = <Api as utoipa::OpenApi>::openapi();
        document_chassis_problems(&mut api);
        let json = serde_json::to_value(&api).expect("serialises");
        let responses = &json["paths"]["/items/{id}"]["post"]["responses"];
        assert_eq!(responses["422"]["description"], "mine");
        for status in ["400", "413", "415", "500"] {
            assert!(
                responses[status]["$ref"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("#/components/responses/Chassis")),
                "{status}: {responses}"
            );
        }
        assert!(json["components"]["schemas"]["ProblemDetails"].is_object());
        assert_eq!(
            json["components"]["responses"]["ChassisBadRequest"]["content"][PROBLEM_JSON]["schema"]
                ["$ref"],
            "#/components/schemas/ProblemDetails"
        );
    }
}
