//! The injected faults applied to a request: hang, delay, or fail it.

use axum::body::Body;
use futures_util::future::{BoxFuture, Either};
use http::Response;

use crate::faults::{Decision, injected_failure};

/// The future of a request the fault state decided `decision` for: the inner service's own
/// (`call` makes it), or one that hangs, waits first or fails.
pub(crate) fn apply<F, E>(
    decision: Decision,
    call: impl FnOnce() -> F,
) -> Either<F, BoxFuture<'static, Result<Response<Body>, E>>>
where
    F: Future<Output = Result<Response<Body>, E>> + Send + 'static,
    E: 'static,
{
    match decision {
        Decision::Pass => Either::Left(call()),
        Decision::Hang => Either::Right(Box::pin(std::future::pending())),
        Decision::Fail => Either::Right(Box::pin(async { Ok(injected_failure()) })),
        Decision::Delay(delay, fail) => {
            let fut = call();
            Either::Right(Box::pin(async move {
                tokio::time::sleep(delay).await;
                if fail {
                    Ok(injected_failure())
                } else {
                    fut.await
                }
            }))
        }
    }
}
