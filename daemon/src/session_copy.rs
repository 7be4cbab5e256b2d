//! `COPY … TO STDOUT` and `COPY … FROM STDIN` in a session (a child of
//! `session`, for its private state): the data streams through in pieces
//! both ways, so memory stays bounded whatever the size of the table.

use super::{send_done, Failure, Session, Txn};
use crate::error::RequestError;
use crate::frame::FrameWriter;
use bytes::Bytes;
use futures_util::{pin_mut, SinkExt, TryStreamExt};
use iam_pgbroker_proto::{ErrorCode, ErrorInfo, Response};
use std::pin::Pin;
use tokio::io::AsyncWrite;
use tokio_postgres::CopyInSink;

/// A `COPY … FROM STDIN` waiting for its data.
pub struct CopyIn {
    /// Where the data goes; `None` once PostgreSQL failed the statement.
    sink: Option<Pin<Box<CopyInSink<Bytes>>>>,
    /// Why the statement failed, answered at `copy_done`.
    error: Option<RequestError>,
    /// The `copy_in` request, for the audit.
    pub request: u64,
    /// The statement's kind, for the audit and `done`.
    pub kind: &'static str,
    /// When it started.
    pub started: std::time::Instant,
}

impl Session {
    /// Whether a `COPY … FROM STDIN` waits for data: nothing else may run.
    pub fn copying(&self) -> bool {
        self.copy_in.is_some()
    }

    /// The running `COPY … FROM STDIN`'s request id and kind.
    pub fn copy_in_request(&self) -> Option<(u64, &'static str, std::time::Instant)> {
        self.copy_in
            .as_ref()
            .map(|c| (c.request, c.kind, c.started))
    }

    /// Runs a checked `COPY … TO STDOUT` and streams its data as
    /// `copy_data` frames of about `chunk_bytes` (whole rows, as
    /// PostgreSQL sends them), then `done` with the row count.
    pub async fn copy_out<W: AsyncWrite + Unpin>(
        &mut self,
        id: u64,
        checked: &super::Checked,
        out: &mut FrameWriter<W>,
    ) -> Result<u64, Failure> {
        self.begin_checked().await?;
        let client = self.conn()?.client.clone();
        let stream = match client.copy_out(&*checked.sql).await {
            Ok(s) => s,
            Err(e) => return Err(self.failed(e).into()),
        };
        pin_mut!(stream);
        let header = iam_pgbroker_sql::copy_header(&checked.sql);
        let mut chunk: Vec<u8> = Vec::with_capacity(self.chunks.bytes + 1024);
        let (mut messages, mut sent) = (0u64, 0u64);
        loop {
            match stream.try_next().await {
                Ok(Some(data)) => {
                    messages += 1;
                    chunk.extend_from_slice(&data);
                    let limit = self.chunks.max_bytes;
                    if limit > 0 && sent + chunk.len() as u64 > limit {
                        return Err(self.over_limit(&format!("{limit} bytes")));
                    }
                    if chunk.len() >= self.chunks.bytes {
                        sent += chunk.len() as u64;
                        self.send_notices(id, out).await?;
                        send_copy_data(out, id, &mut chunk).await?;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    send_copy_data(out, id, &mut chunk).await?;
                    return Err(self.failed(e).into());
                }
            }
        }
        send_copy_data(out, id, &mut chunk).await?;
        // PostgreSQL sends one message per row, and the CSV header as one
        // more (its own count leaves it out).
        let rows = messages.saturating_sub(u64::from(header && messages > 0));
        self.send_notices(id, out).await?;
        send_done(out, id, rows, checked.verdict.kind).await?;
        Ok(rows)
    }

    /// Starts a checked `COPY … FROM STDIN`; its data follows in
    /// [`Session::copy_data`], its end in [`Session::copy_done`] or
    /// [`Session::copy_fail`].
    pub async fn copy_in_start(
        &mut self,
        id: u64,
        checked: &super::Checked,
    ) -> Result<(), RequestError> {
        self.begin_checked().await?;
        let client = self.conn()?.client.clone();
        let sink = match client.copy_in::<_, Bytes>(&*checked.sql).await {
            Ok(s) => s,
            Err(e) => return Err(self.failed(e)),
        };
        self.copy_in = Some(CopyIn {
            sink: Some(Box::pin(sink)),
            error: None,
            request: id,
            kind: checked.verdict.kind,
            started: std::time::Instant::now(),
        });
        Ok(())
    }

    /// A piece of the data; an error is kept for `copy_done`.
    pub async fn copy_data(&mut self, data: String) -> Result<(), RequestError> {
        let Some(copy) = self.copy_in.as_mut() else {
            return Err(RequestError::BadRequest(
                "copy_data without a COPY FROM STDIN in progress (send copy_in first)".into(),
            ));
        };
        if let Some(sink) = copy.sink.as_mut() {
            if let Err(e) = sink.send(Bytes::from(data)).await {
                copy.sink = None;
                copy.error = Some(RequestError::Postgres(e));
            }
        }
        Ok(())
    }

    /// The end of the data: the row count, or why the statement failed.
    pub async fn copy_done(&mut self) -> Result<u64, RequestError> {
        let Some(mut copy) = self.copy_in.take() else {
            return Err(no_copy("copy_done"));
        };
        let result = match (copy.error.take(), copy.sink.as_mut()) {
            (Some(e), _) => Err(e),
            (None, Some(sink)) => sink.as_mut().finish().await.map_err(RequestError::Postgres),
            (None, None) => Err(RequestError::Internal("the COPY has no sink".into())),
        };
        if result.is_err() && self.txn == Txn::Open {
            self.txn = Txn::Failed;
        }
        result
    }

    /// Abandons the COPY: PostgreSQL fails it, and the transaction with it.
    pub fn copy_fail(&mut self, message: &str) -> Result<RequestError, RequestError> {
        let Some(copy) = self.copy_in.take() else {
            return Err(no_copy("copy_fail"));
        };
        // Dropping the sink without finishing it sends PostgreSQL CopyFail.
        drop(copy);
        if self.txn == Txn::Open {
            self.txn = Txn::Failed;
        }
        Ok(RequestError::Reported(Box::new(ErrorInfo {
            sqlstate: Some("57014".into()),
            severity: Some("ERROR".into()),
            ..ErrorInfo::new(
                ErrorCode::Database,
                format!("COPY from stdin failed: {message}"),
            )
        })))
    }

    /// Begins the transaction for a statement the guard let through.
    async fn begin_checked(&mut self) -> Result<(), RequestError> {
        if self.client()?.is_closed() && self.first_use.is_none() {
            return Err(RequestError::ConnectionLost);
        }
        self.begin_if_idle().await
    }
}

fn no_copy(op: &str) -> RequestError {
    RequestError::BadRequest(format!("{op} without a COPY FROM STDIN in progress"))
}

async fn send_copy_data<W: AsyncWrite + Unpin>(
    out: &mut FrameWriter<W>,
    id: u64,
    chunk: &mut Vec<u8>,
) -> Result<(), Failure> {
    if chunk.is_empty() {
        return Ok(());
    }
    let data = match String::from_utf8(std::mem::take(chunk)) {
        Ok(text) => text,
        Err(_) => {
            return Err(
                RequestError::Internal("COPY data from PostgreSQL is not UTF-8".into()).into(),
            )
        }
    };
    out.send(&Response::CopyData { id, data })
        .await
        .map_err(Failure::Client)
}
