//! Reads JSON into a `serde_json::Value` keeping only the members a [`Keep`]
//! shape names. Everything else is still checked to be well-formed JSON but
//! skipped without being built: no allocation, no hashing. An admission review
//! carries a whole object (env, resources, volumes, managedFields, status) of
//! which the rules read a few fields; building a tree of the rest was most of
//! a review's cost (docs/performance.md).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// What to keep of a JSON value.
#[derive(Debug)]
pub enum Keep {
    /// The whole value.
    All,
    /// Nothing: the member is skipped as if it were absent.
    Skip,
    /// An object: the listed members as their shapes say, every other member
    /// as the second field says. A value that is not an object is kept whole,
    /// so a reader still sees (and reports) a field of the wrong type.
    Members(&'static [(&'static str, &'static Keep)], &'static Keep),
    /// An array: each element as the shape says (kept whole if not an array).
    Each(&'static Keep),
    /// [`Keep::Each`] for the first `n` elements; past them, one `null`
    /// stands for all the rest, which are checked but not built. A reader
    /// sees `n + 1` elements exactly when there are more than `n`.
    EachUpTo(usize, &'static Keep),
    /// A value of a known type that no rule reads: checked to be of that
    /// type, and never built (read as `null`, i.e. absent, when it is).
    Check(Expect),
}

/// The types [`Keep::Check`] checks without building.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// A string, number, boolean or null: built, as it costs no more than its
    /// bytes, so that the typed reader reports the right type error.
    Scalar,
    /// An array of strings (or null).
    Strings,
    /// An object whose members are arrays of strings (or null), like
    /// `userInfo.extra`.
    StringLists,
}

/// Parses `bytes` keeping what `keep` names.
pub fn from_slice(bytes: &[u8], keep: &'static Keep) -> serde_json::Result<Value> {
    // One pass over the whole body checks its UTF-8 faster than the parser
    // checks it string by string (a tenth of a review's instructions), and
    // also covers the strings that are skipped.
    let text = std::str::from_utf8(bytes).map_err(|err| {
        <serde_json::Error as de::Error>::custom(format!(
            "invalid UTF-8 at byte {}",
            err.valid_up_to()
        ))
    })?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Shaped(keep).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// A `DeserializeSeed` building the kept part of a value.
#[derive(Clone, Copy)]
struct Shaped(&'static Keep);

impl<'de> DeserializeSeed<'de> for Shaped {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.0 {
            Keep::All => serde::Deserialize::deserialize(deserializer),
            Keep::Skip => deserializer.deserialize_any(Discard).map(|()| Value::Null),
            Keep::Check(expect) => deserializer.deserialize_any(Checked(*expect)),
            shape => deserializer.deserialize_any(ShapedVisitor(shape)),
        }
    }
}

/// A member name, borrowed from the body unless it holds escapes: a skipped
/// member costs no allocation. (serde's own `Cow<str>` is always owned.)
struct MemberName;

impl<'de> DeserializeSeed<'de> for MemberName {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MemberName {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Reads a value and keeps nothing of it. Unlike `serde::de::IgnoredAny`,
/// which serde_json skips without checking `\u` escapes for lone UTF-16
/// surrogates and without counting nesting toward its depth limit, every
/// value is read as the full parser reads it: a body the floor of any webhook
/// would refuse is refused here too (tests/operations.rs sends such bodies).
#[derive(Clone, Copy)]
struct Discard;

impl<'de> DeserializeSeed<'de> for Discard {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Discard {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Discard)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Discard)?.is_some() {
            map.next_value_seed(Discard)?;
        }
        Ok(())
    }
}

/// Reads a value of an [`Expect`]ed type. A value of another type is an
/// error, which the typed reader would have reported as well.
#[derive(Clone, Copy)]
struct Checked(Expect);

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Any string; anything else is an error.
#[derive(Clone, Copy)]
struct AString;

impl<'de> DeserializeSeed<'de> for AString {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AString {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Expect::Scalar => "a string, number, boolean or null",
            Expect::Strings => "an array of strings",
            Expect::StringLists => "a map of string arrays",
        })
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        match self.0 {
            Expect::Scalar => Ok(Value::Bool(v)),
            _ => Err(E::invalid_type(de::Unexpected::Bool(v), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        match self.0 {
            Expect::Scalar => Ok(Value::from(v)),
            _ => Err(E::invalid_type(de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        match self.0 {
            Expect::Scalar => Ok(Value::from(v)),
            _ => Err(E::invalid_type(de::Unexpected::Unsigned(v), &self)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        match self.0 {
            Expect::Scalar => Ok(Value::from(v)),
            _ => Err(E::invalid_type(de::Unexpected::Float(v), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        match self.0 {
            Expect::Scalar => Ok(Value::String(v.to_string())),
            _ => Err(E::invalid_type(de::Unexpected::Str(v), &self)),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        match self.0 {
            Expect::Strings => {
                while seq.next_element_seed(AString)?.is_some() {}
                Ok(Value::Null)
            }
            _ => Err(de::Error::invalid_type(de::Unexpected::Seq, &self)),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        match self.0 {
            Expect::StringLists => {
                while map.next_key_seed(Discard)?.is_some() {
                    // Each member must be an array of strings; null is not
                    // (serde reads `Vec<String>` only from an array).
                    map.next_value_seed(NonNullStrings)?;
                }
                Ok(Value::Null)
            }
            _ => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
    }
}

/// An array of strings, null not accepted.
#[derive(Clone, Copy)]
struct NonNullStrings;

impl<'de> DeserializeSeed<'de> for NonNullStrings {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NonNullStrings {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(AString)?.is_some() {}
        Ok(())
    }
}

struct ShapedVisitor(&'static Keep);

impl<'de> Visitor<'de> for ShapedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let (element, at_most) = match self.0 {
            Keep::Each(element) => (*element, usize::MAX),
            Keep::EachUpTo(at_most, element) => (*element, *at_most),
            _ => (&Keep::All, usize::MAX),
        };
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(at_most));
        while items.len() < at_most {
            match seq.next_element_seed(Shaped(element))? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
        if seq.next_element_seed(Discard)?.is_some() {
            while seq.next_element_seed(Discard)?.is_some() {}
            items.push(Value::Null);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let (members, rest) = match self.0 {
            Keep::Members(members, rest) => (*members, *rest),
            _ => (&[][..], &Keep::All),
        };
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(MemberName)? {
            let shape = members
                .iter()
                .find(|(name, _)| *name == key)
                .map_or(rest, |(_, shape)| *shape);
            match shape {
                Keep::Skip => map.next_value_seed(Discard)?,
                shape => {
                    let value = map.next_value_seed(Shaped(shape))?;
                    object.insert(key.into_owned(), value);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static CHECKED: Keep = Keep::Members(
        &[
            ("s", &Keep::Check(Expect::Scalar)),
            ("list", &Keep::Check(Expect::Strings)),
            ("lists", &Keep::Check(Expect::StringLists)),
        ],
        &Keep::Skip,
    );

    static UP_TO_TWO: Keep = Keep::EachUpTo(2, &Keep::Members(&[("n", &Keep::All)], &Keep::Skip));

    #[test]
    fn elements_past_the_bound_are_one_null() {
        let parse = |text: &str| from_slice(text.as_bytes(), &UP_TO_TWO).unwrap();
        assert_eq!(parse(r#"[{"n": 1, "x": 0}]"#), json!([{"n": 1}]));
        assert_eq!(
            parse(r#"[{"n": 1}, {"n": 2}]"#),
            json!([{"n": 1}, {"n": 2}])
        );
        assert_eq!(
            parse(r#"[{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]"#),
            json!([{"n": 1}, {"n": 2}, null])
        );
        assert!(from_slice(br#"[{}, {}, {}, tru]"#, &UP_TO_TWO).is_err());
    }

    #[test]
    fn checked_values_are_typed_but_not_built() {
        let text = br#"{"s": "x", "list": ["a", "b"], "lists": {"k": ["v"], "l": []}}"#;
        assert_eq!(
            from_slice(text, &CHECKED).unwrap(),
            json!({"s": "x", "list": null, "lists": null})
        );
        let nulls = br#"{"s": null, "list": null, "lists": null}"#;
        assert!(from_slice(nulls, &CHECKED).is_ok());
        for wrong in [
            r#"{"s": [1]}"#,
            r#"{"s": {}}"#,
            r#"{"list": [1]}"#,
            r#"{"list": [null]}"#,
            r#"{"list": "a"}"#,
            r#"{"lists": {"k": null}}"#,
            r#"{"lists": {"k": [2]}}"#,
            r#"{"lists": ["v"]}"#,
        ] {
            assert!(from_slice(wrong.as_bytes(), &CHECKED).is_err(), "{wrong}");
        }
    }

    static SHAPE: Keep = Keep::Members(
        &[
            ("keep", &Keep::All),
            ("drop", &Keep::Skip),
            (
                "list",
                &Keep::Each(&Keep::Members(&[("name", &Keep::All)], &Keep::Skip)),
            ),
        ],
        &Keep::Skip,
    );

    #[test]
    fn keeps_only_what_the_shape_names() {
        let text = br#"{"keep": {"a": [1, "x"]}, "drop": {"b": 2}, "other": 3,
            "list": [{"name": "n", "env": [1]}, {"env": []}, "odd"]}"#;
        assert_eq!(
            from_slice(text, &SHAPE).unwrap(),
            json!({"keep": {"a": [1, "x"]}, "list": [{"name": "n"}, {}, "odd"]})
        );
    }

    #[test]
    fn a_value_of_another_type_is_kept_whole() {
        let text = br#"{"list": {"name": "not a list", "env": 1}, "keep": null}"#;
        assert_eq!(
            from_slice(text, &SHAPE).unwrap(),
            json!({"list": {"name": "not a list", "env": 1}, "keep": null})
        );
    }

    #[test]
    fn skipped_members_must_still_be_json() {
        assert!(from_slice(br#"{"drop": {"b": tru}}"#, &SHAPE).is_err());
        assert!(from_slice(br#"{"other": [1, 2"#, &SHAPE).is_err());
        assert!(from_slice(br#"{"keep": 1} trailing"#, &SHAPE).is_err());
        assert!(from_slice(b"{\"drop\": \"\xff\"}", &SHAPE).is_err());
        // A lone surrogate: serde_json's IgnoredAny would let it through.
        assert!(from_slice(br#"{"drop": "\ud800"}"#, &SHAPE).is_err());
        assert!(from_slice(br#"{"other": {"\ud800": 1}}"#, &SHAPE).is_err());
    }

    /// Every member kept but the ones named `Skip`.
    static KEEP_REST: Keep = Keep::Members(&[("drop", &Keep::Skip)], &Keep::All);

    #[test]
    fn escaped_keys_are_matched_after_unescaping() {
        let text = br#"{"ke\u0065p": 1, "dr\u006fp": 2}"#;
        assert_eq!(from_slice(text, &SHAPE).unwrap(), json!({"keep": 1}));
        let text = br#"{"other": 1, "dr\u006fp": 2, "\u00e9": 3}"#;
        assert_eq!(
            from_slice(text, &KEEP_REST).unwrap(),
            json!({"other": 1, "é": 3})
        );
    }

    #[test]
    fn named_members_follow_their_shape_and_the_rest_theirs() {
        let text = br#"{"drop": {"a": 1}, "other": {"b": [1, {"c": null}]}, "n": 2.5}"#;
        assert_eq!(
            from_slice(text, &KEEP_REST).unwrap(),
            json!({"other": {"b": [1, {"c": null}]}, "n": 2.5})
        );
    }

    #[test]
    fn a_repeated_member_keeps_the_last_value_as_the_full_parser_does() {
        let text = br#"{"keep": 1, "other": 0, "keep": {"x": 2}}"#;
        let full: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(from_slice(text, &KEEP_REST).unwrap(), full);
        assert_eq!(from_slice(text, &SHAPE).unwrap(), json!({"keep": {"x": 2}}));
    }
}
