//! A JSON value whose objects keep their keys in insertion order, as the
//! reference's answers list them (Jackson over a `LinkedHashMap`), and its
//! pretty-printed text. Strings and numbers are written by `serde_json`, so
//! escaping and float text are standard; a non-finite float, which JSON
//! cannot hold, is written as `null`.

use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Object),
}

/// Keys in insertion order; putting an existing key replaces its value in
/// place, as a `LinkedHashMap` does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object(Vec<(String, Json)>);

impl Object {
    pub fn new() -> Object {
        Object::default()
    }

    pub fn put(&mut self, key: impl Into<String>, value: impl Into<Json>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl From<bool> for Json {
    fn from(value: bool) -> Json {
        Json::Bool(value)
    }
}

impl From<i64> for Json {
    fn from(value: i64) -> Json {
        Json::Int(value)
    }
}

impl From<i32> for Json {
    fn from(value: i32) -> Json {
        Json::Int(i64::from(value))
    }
}

impl From<u32> for Json {
    fn from(value: u32) -> Json {
        Json::Int(i64::from(value))
    }
}

/// Counts beyond `i64::MAX` cannot occur in practice; they saturate rather
/// than wrap negative.
impl From<u64> for Json {
    fn from(value: u64) -> Json {
        Json::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Json {
    fn from(value: usize) -> Json {
        Json::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Json {
    fn from(value: f64) -> Json {
        Json::Float(value)
    }
}

impl From<&str> for Json {
    fn from(value: &str) -> Json {
        Json::Str(value.to_string())
    }
}

impl From<String> for Json {
    fn from(value: String) -> Json {
        Json::Str(value)
    }
}

impl From<Object> for Json {
    fn from(value: Object) -> Json {
        Json::Object(value)
    }
}

impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(values: Vec<T>) -> Json {
        Json::Array(values.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(value: Option<T>) -> Json {
        value.map_or(Json::Null, Into::into)
    }
}

impl Json {
    /// Two-space indented text ending in a newline.
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            Json::Int(value) => {
                let _ = write!(out, "{value}");
            }
            Json::Float(value) => match serde_json::Number::from_f64(*value) {
                Some(number) => {
                    let _ = write!(out, "{number}");
                }
                None => out.push_str("null"),
            },
            Json::Str(value) => write_string(out, value),
            Json::Array(items) if items.is_empty() => out.push_str("[ ]"),
            Json::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    item.write(out, depth + 1);
                }
                newline(out, depth);
                out.push(']');
            }
            Json::Object(object) if object.0.is_empty() => out.push_str("{ }"),
            Json::Object(object) => {
                out.push('{');
                for (index, (key, value)) in object.0.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    write_string(out, key);
                    out.push_str(" : ");
                    value.write(out, depth + 1);
                }
                newline(out, depth);
                out.push('}');
            }
        }
    }
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_string(out: &mut String, value: &str) {
    // Serialising a &str cannot fail.
    match serde_json::to_string(value) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_order_and_values_are_standard_json() {
        let mut inner = Object::new();
        inner.put("b", 1i64);
        inner.put("a", "x\"\n\u{1}");
        let mut object = Object::new();
        object.put("z", inner);
        object.put("avg", 0.0);
        object.put("nan", f64::NAN);
        object.put("list", vec![1i64, -2]);
        object.put("empty", Vec::<i64>::new());
        object.put("none", Option::<String>::None);
        object.put("z", true);
        let text = Json::Object(object).to_pretty();
        assert_eq!(
            text,
            "{\n  \"z\" : true,\n  \"avg\" : 0.0,\n  \"nan\" : null,\n  \"list\" : [\n    1,\n    -2\n  ],\n  \"empty\" : [ ],\n  \"none\" : null\n}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed["avg"], serde_json::json!(0.0));
        let mut nested = Object::new();
        nested.put("s", "x\"\n\u{1}");
        let parsed: serde_json::Value =
            serde_json::from_str(&Json::Object(nested).to_pretty()).expect("valid JSON");
        assert_eq!(parsed["s"], "x\"\n\u{1}");
    }
}
