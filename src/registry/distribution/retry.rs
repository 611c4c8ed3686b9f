//! When and how long the client waits before repeating a request.
//!
//! Owns [`RetryPolicy`]: which statuses are worth repeating (429, 502, 503, 504), exponential
//! backoff with jitter, and `Retry-After` (seconds of any size, or an HTTP date) capped at a
//! configurable maximum. Pure apart from the jitter: it decides delays, the client sleeps.

use std::time::Duration;

use reqwest::StatusCode;

/// How often and how long to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Backoff before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Longest backoff between two attempts when the registry gives no `Retry-After`.
    pub max_backoff: Duration,
    /// Longest wait the client accepts from a `Retry-After` header; a longer request is cut to
    /// this (and reported as a warning).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// `true` if and only if `status` is a transient answer worth repeating: 429 (rate limited),
/// 502, 503 or 504 (a gateway or the registry is overloaded).
pub fn retryable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// The wait a `Retry-After` value asks for: delay-seconds of any size, or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`) relative to `now`. A date in the past means no wait.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // more digits than a u64 holds still means "a long time"
        return Some(value.parse::<u64>().map_or(Duration::MAX, Duration::from_secs));
    }
    let date = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
    let wait = now.duration_until(date);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

impl RetryPolicy {
    /// The exponential backoff before retry number `retry` (0-based), without jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(30));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// The wait before retry number `retry`: the registry's `Retry-After` (capped) when it
    /// sent one, else the backoff with jitter (a random point in its upper half). The second
    /// value is `Some(asked)` when `Retry-After` asked for more than the cap.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> (Duration, Option<Duration>) {
        if let Some(asked) = retry_after {
            if asked > self.max_retry_after {
                return (self.max_retry_after, Some(asked));
            }
            return (asked, None);
        }
        let backoff = self.backoff(retry);
        let half = backoff / 2;
        let jitter = half.mul_f64(fastrand::f64());
        (half + jitter, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_values() {
        let now: jiff::Timestamp = "2026-11-01T12:00:00Z".parse().unwrap();
        for (value, want) in [
            ("0", Some(Duration::ZERO)),
            ("1", Some(Duration::from_secs(1))),
            ("300", Some(Duration::from_secs(300))),
            (" 86400 ", Some(Duration::from_secs(86_400))),
            ("99999999999999999999999", Some(Duration::MAX)),
            ("Sun, 01 Nov 2026 12:05:00 GMT", Some(Duration::from_secs(300))),
            ("Sun, 01 Nov 2026 11:00:00 GMT", Some(Duration::ZERO)),
            ("-5", None),
            ("soon", None),
            ("", None),
        ] {
            assert_eq!(parse_retry_after(value, now), want, "{value}");
        }
    }

    #[test]
    fn retryable_statuses() {
        for (status, want) in [
            (429, true),
            (502, true),
            (503, true),
            (504, true),
            (500, false),
            (400, false),
            (401, false),
            (404, false),
            (405, false),
        ] {
            assert_eq!(retryable_status(StatusCode::from_u16(status).unwrap()), want, "{status}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        };
        let backoffs: Vec<u128> = (0..6).map(|retry| policy.backoff(retry).as_millis()).collect();
        assert_eq!(backoffs, [100, 200, 400, 800, 1000, 1000]);
        for retry in 0..6 {
            let (delay, capped) = policy.delay(retry, None);
            assert!(
                delay >= policy.backoff(retry) / 2 && delay <= policy.backoff(retry),
                "{retry}"
            );
            assert_eq!(capped, None);
        }
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let policy =
            RetryPolicy { max_retry_after: Duration::from_secs(60), ..RetryPolicy::default() };
        assert_eq!(policy.delay(0, Some(Duration::from_secs(3))), (Duration::from_secs(3), None));
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(300))),
            (Duration::from_secs(60), Some(Duration::from_secs(300)))
        );
    }
}
