//! [`FaultLayer`]: applies the injected faults to each request.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use tower::{Layer, Service};

use crate::faults::{Decision, FaultState, injected_failure};

/// Applies [`FaultState`] to requests: hang, delay, or fail them.
#[derive(Debug, Clone)]
pub struct FaultLayer {
    faults: Arc<FaultState>,
}

impl FaultLayer {
    /// A layer applying `faults`.
    pub fn new(faults: Arc<FaultState>) -> Self {
        Self { faults }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = Faults<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Faults {
            inner,
            faults: self.faults.clone(),
        }
    }
}

/// The service made by [`FaultLayer`].
#[derive(Debug, Clone)]
pub struct Faults<S> {
    inner: S,
    faults: Arc<FaultState>,
}

impl<S, B> Service<Request<B>> for Faults<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        S::Future,
        BoxFuture<'static, Result<Response<Body>, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        use futures_util::future::Either;
        // The route is looked up only while a fault is in force.
        let chassis = || {
            super::route_of(&req).is_some_and(|r| super::access_log::is_chassis_route(r.as_str()))
        };
        match self.faults.decide(req.uri().path(), chassis) {
            Decision::Pass => Either::Left(self.inner.call(req)),
            Decision::Hang => Either::Right(Box::pin(std::future::pending())),
            Decision::Fail => Either::Right(Box::pin(async { Ok(injected_failure()) })),
            Decision::Delay(delay, fail) => {
                let fut = self.inner.call(req);
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
}
