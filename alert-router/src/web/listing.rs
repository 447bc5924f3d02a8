//! The query parameters of the paginated JSON listings (`/api/v1/alerts`, an alert's history,
//! `/api/v1/notifications`): `limit` (rows per page, [`DEFAULT_LIMIT`] unless given, at most
//! [`MAX_LIMIT`]) and `cursor` (the `next` of the previous page, opaque). A bad value is
//! refused with 400 and a JSON reason naming the parameter, never clamped or ignored: a script
//! asking for 5,000 rows should learn that it gets at most 1,000 per page.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::{Cursor, Page};

/// Rows per page when the request does not say.
pub const DEFAULT_LIMIT: i64 = 100;
/// Most rows one page returns.
pub const MAX_LIMIT: i64 = 1000;

pub(crate) fn bad_request(reason: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": "bad_request", "reason": reason})),
    )
        .into_response()
}

/// The query string, parsed into `T` (which denies unknown parameters), or the reason not.
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, String> {
    q.map(|Query(t)| t).map_err(|e| e.body_text())
}

/// `limit` and `cursor` as given (text, so that a non-number gets our reason, not serde's).
pub(crate) fn page_params(
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(i64, Option<Cursor>), String> {
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"
                ));
            }
        },
    };
    let cursor = cursor
        .map(Cursor::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok((limit, cursor))
}

/// `{"<key>": [rows], "next": "cursor" | null}`.
pub(crate) fn page_json<T: serde::Serialize>(key: &str, page: &Page<T>) -> Value {
    json!({ key: page.items, "next": page.next.as_ref().map(Cursor::encode) })
}
