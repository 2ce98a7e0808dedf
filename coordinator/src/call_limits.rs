//! Per-method limits of the gRPC listener, as a tower layer in front of every
//! service: the largest message each method accepts (checked on the gRPC
//! length prefixes as the bytes arrive, before tonic buffers a message), and a
//! deadline for the unary methods. A message past its method's limit ends the
//! call with RESOURCE_EXHAUSTED naming the method and both sizes; a call past
//! its deadline with DEADLINE_EXCEEDED.
//!
//! Large messages are allowed only where an honest worker sends them: the
//! upload stream's checkpoint chunks and the result of `Complete`, which
//! carries every epoch's metrics.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use spikecv_common::experiment::error::bounds;
use tonic::Status;
use tonic::body::Body;

/// Bytes of a gRPC message's prefix: a compression flag and a big-endian length.
const PREFIX_BYTES: usize = 5;
/// Largest message of a method not named otherwise (epoch reports, failures,
/// releases, downloads, control and status requests).
pub const SMALL_MESSAGE_BYTES: usize = 64 << 10;
/// Largest registration, lease or heartbeat: a registration with every slot
/// and a list of free slots and running attempts, each at its field limits
/// (`spikecv_common::proto::limits`), fits in half of it.
pub const WORKER_STATE_MESSAGE_BYTES: usize = 1 << 20;
/// Largest checkpoint chunk: the worker sends 1 MiB of file per chunk, plus
/// the attempt id, epoch and hash.
pub const CHUNK_MESSAGE_BYTES: usize = (1 << 20) + (16 << 10);
/// Bytes reserved per epoch in a result: its metrics encode in under 100
/// bytes, each LIF layer's firing rates in about 30 more (the reference
/// network has 4 layers).
const EPOCH_RECORD_BYTES: usize = 256;
/// Largest `Complete`: every epoch up to the configured maximum, the confusion
/// matrix and the scalars.
pub const RESULT_MESSAGE_BYTES: usize = bounds::EPOCHS as usize * EPOCH_RECORD_BYTES + (1 << 20);
/// Largest `Submit`: an experiment's TOML text.
pub const SUBMIT_MESSAGE_BYTES: usize = 1 << 20;
/// Deadline of a unary call: its answer comes from the scheduler thread,
/// which sheds load long before this.
pub const UNARY_DEADLINE: Duration = Duration::from_secs(60);
/// Deadline of `Submit`, which reads and fingerprints the data set.
pub const SUBMIT_DEADLINE: Duration = Duration::from_secs(600);

/// What one method may receive and for how long it may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodLimit {
    /// Largest request message.
    pub message_bytes: usize,
    /// Time until the answer; `None` for streams, whose lifetime their own
    /// handlers bound (the upload deadline, the event-stream cap).
    pub deadline: Option<Duration>,
}

/// The limit of the method at `path` (`/package.Service/Method`).
pub fn limit_for(path: &str) -> MethodLimit {
    let method = path.rsplit('/').next().unwrap_or(path);
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let unary = |message_bytes| MethodLimit {
        message_bytes,
        deadline: Some(UNARY_DEADLINE),
    };
    let stream = |message_bytes| MethodLimit {
        message_bytes,
        deadline: None,
    };
    match (service, method) {
        ("spikecv.v1.Coordinator", "UploadCheckpoint") => stream(CHUNK_MESSAGE_BYTES),
        ("spikecv.v1.Coordinator", "DownloadCheckpoint") => stream(SMALL_MESSAGE_BYTES),
        ("spikecv.v1.Coordinator", "Complete") => unary(RESULT_MESSAGE_BYTES),
        ("spikecv.v1.Coordinator", "Register" | "Lease" | "Heartbeat") => {
            unary(WORKER_STATE_MESSAGE_BYTES)
        }
        ("spikecv.v1.Admin", "Submit") => MethodLimit {
            message_bytes: SUBMIT_MESSAGE_BYTES,
            deadline: Some(SUBMIT_DEADLINE),
        },
        ("spikecv.v1.Admin", "Watch") | ("grpc.health.v1.Health", "Watch") => {
            stream(SMALL_MESSAGE_BYTES)
        }
        _ => unary(SMALL_MESSAGE_BYTES),
    }
}

/// Counts the bytes of each gRPC message in a request body from its length
/// prefix, so an oversized one is refused before it is read.
#[derive(Debug, Default, Clone)]
pub struct MessageSizes {
    prefix: [u8; PREFIX_BYTES],
    prefix_len: usize,
    payload_left: u64,
}

impl MessageSizes {
    /// Takes the next bytes of the body; `Err(size)` when a message declares
    /// more than `max` bytes.
    pub fn feed(&mut self, mut data: &[u8], max: usize) -> Result<(), u64> {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.payload_left -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (PREFIX_BYTES - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == PREFIX_BYTES {
                self.prefix_len = 0;
                let [_, a, b, c, d] = self.prefix;
                let size = u64::from(u32::from_be_bytes([a, b, c, d]));
                if size > max as u64 {
                    return Err(size);
                }
                self.payload_left = size;
            }
        }
        Ok(())
    }
}

/// A request body that fails with RESOURCE_EXHAUSTED at the first message
/// past its method's limit.
struct LimitedBody {
    inner: Body,
    sizes: MessageSizes,
    max: usize,
    method: String,
    failed: bool,
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            let max = self.max;
            let data = data.clone();
            if let Err(size) = self.sizes.feed(&data, max) {
                self.failed = true;
                return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                    "{}: a message of {size} bytes; this method's limit is {max} bytes",
                    self.method
                )))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The layer that puts [`CallLimits`] in front of a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallLimitsLayer;

impl<S> tower::Layer<S> for CallLimitsLayer {
    type Service = CallLimits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLimits { inner }
    }
}

/// A service whose requests are held to [`limit_for`] their method.
#[derive(Debug, Clone)]
pub struct CallLimits<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<Body>> for CallLimits<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Default + Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<B>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was made ready serves this call (tower's idiom).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = request.uri().path().to_owned();
        let limit = limit_for(&method);
        let request = request.map(|body| {
            Body::new(LimitedBody {
                inner: body,
                sizes: MessageSizes::default(),
                max: limit.message_bytes,
                method: method.clone(),
                failed: false,
            })
        });
        let call = inner.call(request);
        Box::pin(async move {
            match limit.deadline {
                None => call.await,
                Some(deadline) => match tokio::time::timeout(deadline, call).await {
                    Ok(answer) => answer,
                    Err(_) => Ok(Status::deadline_exceeded(format!(
                        "{method}: no answer within {} s",
                        deadline.as_secs()
                    ))
                    .into_http()),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0u8];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[test]
    fn prefixes_split_across_frames_are_read_and_big_messages_refused() {
        let mut body = message(10);
        body.extend(message(3));
        body.extend(message(0));
        body.extend(message(100));
        let mut sizes = MessageSizes::default();
        // Every split point, byte by byte: the first three pass, the fourth fails.
        for chunk in body[..body.len() - 100 - PREFIX_BYTES].chunks(1) {
            assert_eq!(sizes.feed(chunk, 10), Ok(()));
        }
        let rest = &body[body.len() - 100 - PREFIX_BYTES..];
        assert_eq!(sizes.feed(&rest[..2], 10), Ok(()));
        assert_eq!(sizes.feed(&rest[2..], 10), Err(100));
        // The same stream in one piece with a larger limit passes.
        assert_eq!(MessageSizes::default().feed(&body, 100), Ok(()));
    }

    #[test]
    fn only_uploads_and_results_take_large_messages() {
        let upload = limit_for("/spikecv.v1.Coordinator/UploadCheckpoint");
        assert_eq!(upload.message_bytes, CHUNK_MESSAGE_BYTES);
        assert_eq!(upload.deadline, None);
        let complete = limit_for("/spikecv.v1.Coordinator/Complete");
        assert!(complete.message_bytes >= bounds::EPOCHS as usize * 100);
        for m in ["Register", "Lease", "Heartbeat"] {
            let l = limit_for(&format!("/spikecv.v1.Coordinator/{m}"));
            assert_eq!(l.message_bytes, WORKER_STATE_MESSAGE_BYTES, "{m}");
        }
        for m in ["ReportEpoch", "Fail", "Release"] {
            let l = limit_for(&format!("/spikecv.v1.Coordinator/{m}"));
            assert_eq!(l.message_bytes, SMALL_MESSAGE_BYTES, "{m}");
            assert_eq!(l.deadline, Some(UNARY_DEADLINE), "{m}");
        }
        assert_eq!(limit_for("/spikecv.v1.Admin/Watch").deadline, None);
        assert_eq!(
            limit_for("/spikecv.v1.Admin/Submit").message_bytes,
            SUBMIT_MESSAGE_BYTES
        );
        assert_eq!(limit_for("/nonsense").message_bytes, SMALL_MESSAGE_BYTES);
    }
}
