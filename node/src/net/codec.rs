//! `FrameCodec`: the request-response wire format, a u32 big-endian length then the body, size-capped.
//!
//! Bodies are opaque bytes; the protocols above encode their own messages. The
//! reader refuses a length above the protocol's limit before reading any body,
//! and grows its buffer only as bytes actually arrive, so a peer that announces
//! a large frame and sends nothing costs nothing. A short or malformed frame is
//! an `io::Error`, which request-response turns into a failed stream (counted
//! by the event loop), never a panic.

use std::io;
use std::sync::Arc;

use futures::prelude::*;
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;

use super::metrics::Counters;

/// Length-prefixed frames with one limit for requests and responses.
///
/// Request-response does not report a request that fails to decode (it only
/// logs at debug level), so the codec counts and logs those itself.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_body_bytes: usize,
    counters: Arc<Counters>,
}

impl FrameCodec {
    pub fn new(max_body_bytes: usize, counters: Arc<Counters>) -> Self {
        FrameCodec {
            max_body_bytes,
            counters,
        }
    }
}

/// Reads one frame of at most `max` body bytes.
pub async fn read_frame<T>(io: &mut T, max: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {max}-byte limit"),
        ));
    }
    let mut body = Vec::new();
    // `take` bounds the read; the buffer grows with the bytes received.
    io.take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "frame announced {len} bytes but the stream ended after {}",
                body.len()
            ),
        ));
    }
    Ok(body)
}

/// Writes one frame, refusing a body above `max` before sending anything.
pub async fn write_frame<T>(io: &mut T, body: &[u8], max: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    let len = u32::try_from(body.len())
        .ok()
        .filter(|_| body.len() <= max)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame of {} bytes exceeds the {max}-byte limit", body.len()),
            )
        })?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(body).await?;
    io.flush().await
}

impl Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    fn read_request<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
    ) -> impl Future<Output = io::Result<Vec<u8>>> + Send
    where
        T: AsyncRead + Unpin + Send,
    {
        let (max, counters, protocol) =
            (self.max_body_bytes, self.counters.clone(), protocol.clone());
        async move {
            let result = read_frame(io, max).await;
            if let Err(e) = &result {
                Counters::inc(&counters.requests_in_rejected);
                tracing::warn!(%protocol, error = %e, "inbound request rejected");
            }
            result
        }
    }

    fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> impl Future<Output = io::Result<Vec<u8>>> + Send
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_body_bytes)
    }

    fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> impl Future<Output = io::Result<()>> + Send
    where
        T: AsyncWrite + Unpin + Send,
    {
        let max = self.max_body_bytes;
        async move { write_frame(io, &req, max).await }
    }

    fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> impl Future<Output = io::Result<()>> + Send
    where
        T: AsyncWrite + Unpin + Send,
    {
        let max = self.max_body_bytes;
        async move { write_frame(io, &res, max).await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;
    use proptest::prelude::*;

    fn read(bytes: &[u8], max: usize) -> io::Result<Vec<u8>> {
        block_on(read_frame(&mut Cursor::new(bytes.to_vec()), max))
    }

    #[test]
    fn round_trip() {
        let mut out = Cursor::new(Vec::new());
        block_on(write_frame(&mut out, b"hello", 16)).expect("fits");
        let bytes = out.into_inner();
        assert_eq!(&bytes[..4], &5u32.to_be_bytes());
        assert_eq!(read(&bytes, 16).expect("valid frame"), b"hello");
    }

    #[test]
    fn refuses_to_write_oversized_body() {
        let mut out = Cursor::new(Vec::new());
        let err = block_on(write_frame(&mut out, &[0; 17], 16)).expect_err("too large");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(out.into_inner().is_empty(), "nothing is sent");
    }

    #[test]
    fn rejects_announced_length_above_limit_without_reading_body() {
        let err = read(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3], 1024).expect_err("too large");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let err = read(&[0, 0, 0, 17], 16).expect_err("too large");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn rejects_truncated_prefix_and_body() {
        assert_eq!(
            read(&[0, 0], 16).expect_err("short prefix").kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            read(&[0, 0, 0, 10, 1, 2, 3], 16)
                .expect_err("short body")
                .kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            read(&[], 16).expect_err("empty").kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn empty_body_is_a_valid_frame() {
        assert_eq!(read(&[0, 0, 0, 0], 16).expect("valid"), Vec::<u8>::new());
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics_and_never_exceeds_limit(bytes in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..40) {
            if let Ok(body) = read(&bytes, max) {
                prop_assert!(body.len() <= max);
                prop_assert_eq!(&bytes[4..4 + body.len()], &body[..]);
            }
        }

        #[test]
        fn write_then_read_is_identity(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut out = Cursor::new(Vec::new());
            block_on(write_frame(&mut out, &body, 256)).expect("fits");
            prop_assert_eq!(read(&out.into_inner(), 256).expect("valid"), body);
        }
    }
}
