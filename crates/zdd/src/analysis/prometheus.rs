//! One instant query to Prometheus' HTTP API (`GET /api/v1/query`), read as one number. Whatever
//! keeps it from being one number (no answer, an error, no series, several, NaN) is a reason
//! the measurement is inconclusive, never a value.

use std::time::Duration;

use crate::http_get;

/// The query's one value, or why there is none.
pub async fn query(address: &str, query: &str, timeout: Duration) -> Result<f64, String> {
    let url = format!("{address}/api/v1/query?query={}", encode(query));
    let (answer, body) = http_get::get_with_body(&url, "zdd-analysis", timeout)
        .await
        .map_err(|err| format!("Prometheus at {address} did not answer: {err}"))?;
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
        format!(
            "Prometheus at {address} answered {} without JSON",
            answer.status
        )
    })?;
    one_number(&json)
}

/// The one number of an answer of `/api/v1/query`, or why there is none.
fn one_number(json: &serde_json::Value) -> Result<f64, String> {
    if json["status"] != "success" {
        let error = json["error"].as_str().unwrap_or("no reason given");
        return Err(format!("Prometheus refused the query: {error}"));
    }
    let data = &json["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => {
            let series = data["result"].as_array().map_or(0, Vec::len);
            match series {
                0 => {
                    return Err(
                        "the query returned no series (no data yet for this version?)".into(),
                    );
                }
                1 => &data["result"][0]["value"],
                n => {
                    return Err(format!(
                        "the query returned {n} series; aggregate it to one (sum(...))"
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "the query returned a {} instead of one number",
                other.unwrap_or("nothing")
            ));
        }
    };
    let text = sample[1].as_str().unwrap_or("");
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err(format!(
            "the query's value is {text} (a division by zero: no requests in its range?)"
        )),
        Err(_) => Err(format!("the query's value {text:?} is not a number")),
    }
}

/// Percent-encodes a query parameter (everything but unreserved characters).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_finite_number_is_a_value() {
        let vector = |result: &str| -> serde_json::Value {
            serde_json::from_str(&format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":{result}}}}}"#
            ))
            .unwrap()
        };
        let series = |v: &str| format!(r#"{{"metric":{{}},"value":[1.5,"{v}"]}}"#);
        assert_eq!(
            one_number(&vector(&format!("[{}]", series("0.02")))),
            Ok(0.02)
        );
        let scalar = serde_json::json!({"status": "success",
            "data": {"resultType": "scalar", "result": [1.5, "3"]}});
        assert_eq!(one_number(&scalar), Ok(3.0));
        let why = |json: &serde_json::Value| one_number(json).unwrap_err();
        assert!(why(&vector("[]")).contains("no series"));
        let two = format!("[{},{}]", series("1"), series("2"));
        assert!(why(&vector(&two)).contains("2 series"));
        assert!(why(&vector(&format!("[{}]", series("NaN")))).contains("NaN"));
        assert!(why(&vector(&format!("[{}]", series("+Inf")))).contains("+Inf"));
        let error = serde_json::json!({"status": "error", "error": "parse error at char 4"});
        assert!(why(&error).contains("parse error at char 4"));
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            encode(r#"sum(rate(x{version="v2"}[30s]))"#),
            "sum%28rate%28x%7Bversion%3D%22v2%22%7D%5B30s%5D%29%29"
        );
    }
}
