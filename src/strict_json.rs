//! Typed reading of JSON that refuses what a full parser refuses
//! ([`from_str`]), reading within a budget of what is built ([`Bounded`]),
//! and types that check a value of a known shape without building it
//! ([`Strings`], [`StringLists`]).
//!
//! serde's derived structs skip the members they do not name with
//! serde_json's fast skip, which does not decode `\u` escapes (a lone UTF-16
//! surrogate passes) and does not count nesting toward serde_json's depth
//! limit. [`from_str`] reads through [`Strict`], which skips each such member
//! by reading it as the full parser does, building nothing: a body the floor
//! of any webhook would refuse is refused here too (tests/operations.rs sends
//! such bodies), in the same single pass that reads the typed fields.
//!
//! A list or map the reader does build costs memory per element, many times
//! its JSON text (a 7 MB array of ports took 187 MiB). [`Bounded`] stops
//! building lists and maps once a [`ReadBudget`] is spent, reads the rest as
//! values to ignore (through [`Strict`] underneath, so what a full parser
//! refuses is still refused) and says so: the reader then knows that what it
//! holds is not the whole input.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Reads `T` from JSON text, failing wherever `serde_json::from_str::<Value>`
/// fails, members `T` skips included.
pub fn from_str<'a, T: Deserialize<'a>>(text: &'a str) -> serde_json::Result<T> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(Strict(&mut deserializer))?;
    deserializer.end()?;
    Ok(value)
}

/// [`from_str`] on bytes, which must be UTF-8: checked in one pass over the
/// whole body, faster than the parser checks it string by string, and
/// covering the strings that are skipped.
pub fn from_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    let text = std::str::from_utf8(bytes).map_err(|err| {
        <serde_json::Error as de::Error>::custom(format!(
            "invalid UTF-8 at byte {}",
            err.valid_up_to()
        ))
    })?;
    from_str(text)
}

/// A deserializer that reads every value its inner one reads, except that a
/// value the reader ignores is read in full ([`Discard`]) instead of skipped.
pub struct Strict<D>(pub D);

macro_rules! forward {
    ($($method:ident $(($($arg:ident: $ty:ty),*))?),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($($arg: $ty,)*)? visitor: V) -> Result<V::Value, Self::Error> {
                self.0.$method($($($arg,)*)? Wrap(visitor))
            }
        )*
    };
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward! {
        deserialize_any, deserialize_bool, deserialize_i8, deserialize_i16, deserialize_i32,
        deserialize_i64, deserialize_i128, deserialize_u8, deserialize_u16, deserialize_u32,
        deserialize_u64, deserialize_u128, deserialize_f32, deserialize_f64, deserialize_char,
        deserialize_str, deserialize_string, deserialize_bytes, deserialize_byte_buf,
        deserialize_option, deserialize_unit, deserialize_seq, deserialize_map,
        deserialize_identifier,
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Discard)?;
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A visitor whose nested deserializers are [`Strict`].
struct Wrap<V>(V);

macro_rules! forward_visits {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.0.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visits! {
        visit_bool(bool), visit_i8(i8), visit_i16(i16), visit_i32(i32), visit_i64(i64),
        visit_i128(i128), visit_u8(u8), visit_u16(u16), visit_u32(u32), visit_u64(u64),
        visit_u128(u128), visit_f32(f32), visit_f64(f64), visit_char(char),
        visit_str(&str), visit_borrowed_str(&'de str), visit_string(String),
        visit_bytes(&[u8]), visit_borrowed_bytes(&'de [u8]), visit_byte_buf(Vec<u8>),
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Strict(d))
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(Strict(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(Wrap(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(Wrap(map))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(Wrap(data))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<S> {
    type Value = S::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Strict(d))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Wrap(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Wrap(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Wrap(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Wrap<A> {
    type Error = A::Error;
    type Variant = Wrap<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        self.0
            .variant_seed(Wrap(seed))
            .map(|(value, variant)| (value, Wrap(variant)))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Wrap<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Wrap(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrap(visitor))
    }
}

/// How much of its input a [`Bounded`] reader may build: list elements and
/// map entries (`items`), and bytes of strings (`text_bytes`). Past either,
/// every list and map still to be read is read in full and kept empty, and
/// [`ReadBudget::exceeded`] says that something was left out.
#[derive(Debug)]
pub struct ReadBudget {
    items_left: Cell<usize>,
    text_bytes_left: Cell<usize>,
    exceeded: Cell<bool>,
}

impl ReadBudget {
    pub fn new(items: usize, text_bytes: usize) -> Self {
        ReadBudget {
            items_left: Cell::new(items),
            text_bytes_left: Cell::new(text_bytes),
            exceeded: Cell::new(false),
        }
    }

    /// Whether a list or map was cut short, or the strings built went past
    /// the limit: what was built is not the whole input.
    pub fn exceeded(&self) -> bool {
        self.exceeded.get()
    }

    fn spent(&self) -> bool {
        self.exceeded.get() || self.items_left.get() == 0
    }

    fn take_item(&self) {
        self.items_left.set(self.items_left.get().saturating_sub(1));
    }

    fn take_text(&self, bytes: usize) {
        match self.text_bytes_left.get().checked_sub(bytes) {
            Some(left) => self.text_bytes_left.set(left),
            None => {
                self.text_bytes_left.set(0);
                self.exceeded.set(true);
            }
        }
    }
}

/// A deserializer that builds what its inner one builds within a
/// [`ReadBudget`]: lists and maps are cut short when it is spent, their rest
/// read as values to ignore (so [`Strict`] underneath still refuses what a
/// full parser refuses). Objects read as structs are never cut short: their
/// fields are bounded by their type, and a missing required field would read
/// as an error instead of as an object past the limit.
pub struct Bounded<'b, D> {
    inner: D,
    budget: &'b ReadBudget,
    /// This value is an element of a list or an entry of a map: building it
    /// takes one item.
    item: bool,
}

impl<'b, D> Bounded<'b, D> {
    pub fn new(inner: D, budget: &'b ReadBudget) -> Self {
        Bounded {
            inner,
            budget,
            item: false,
        }
    }

    fn visitor<V>(&self, inner: V, shape: Shape) -> Budgeted<'b, V> {
        if self.item {
            self.budget.take_item();
        }
        Budgeted {
            inner,
            budget: self.budget,
            shape,
        }
    }
}

/// What a value is read as, which decides what the budget may do to it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A list, a map or a scalar: a list or map is cut short when the budget
    /// is spent.
    Open,
    /// Any JSON value: a list is cut short, an object is not (it may be a
    /// struct read through `deserialize_any`).
    Any,
    /// A struct, tuple or enum: never cut short.
    Fixed,
    /// A field or variant name: read, not kept, so not counted as text.
    Name,
}

macro_rules! forward_bounded {
    ($($shape:ident: $($method:ident $(($($arg:ident: $ty:ty),*))?),*;)*) => {
        $($(
            fn $method<V: Visitor<'de>>(self, $($($arg: $ty,)*)? visitor: V) -> Result<V::Value, Self::Error> {
                let visitor = self.visitor(visitor, Shape::$shape);
                self.inner.$method($($($arg,)*)? visitor)
            }
        )*)*
    };
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Bounded<'_, D> {
    type Error = D::Error;

    forward_bounded! {
        Any: deserialize_any;
        Open: deserialize_bool, deserialize_i8, deserialize_i16, deserialize_i32,
            deserialize_i64, deserialize_i128, deserialize_u8, deserialize_u16, deserialize_u32,
            deserialize_u64, deserialize_u128, deserialize_f32, deserialize_f64,
            deserialize_char, deserialize_str, deserialize_string, deserialize_bytes,
            deserialize_byte_buf, deserialize_option, deserialize_unit, deserialize_seq,
            deserialize_map, deserialize_newtype_struct(name: &'static str);
        Fixed: deserialize_unit_struct(name: &'static str),
            deserialize_tuple(len: usize),
            deserialize_tuple_struct(name: &'static str, len: usize),
            deserialize_struct(name: &'static str, fields: &'static [&'static str]),
            deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        Name: deserialize_identifier;
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_ignored_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor under a [`ReadBudget`]: it counts the text it is given and
/// bounds the lists and maps it reads.
struct Budgeted<'b, V> {
    inner: V,
    budget: &'b ReadBudget,
    shape: Shape,
}

impl<'b, V> Budgeted<'b, V> {
    fn text(&self, bytes: usize) {
        if self.shape != Shape::Name {
            self.budget.take_text(bytes);
        }
    }

    fn nested<D>(&self, inner: D) -> Bounded<'b, D> {
        Bounded::new(inner, self.budget)
    }
}

macro_rules! forward_bounded_visits {
    (text: $($text:ident($tty:ty)),*; other: $($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $text<E: de::Error>(self, v: $tty) -> Result<Self::Value, E> {
                self.text(v.len());
                self.inner.$text(v)
            }
        )*
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Budgeted<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_bounded_visits! {
        text: visit_str(&str), visit_borrowed_str(&'de str), visit_string(String),
            visit_bytes(&[u8]), visit_borrowed_bytes(&'de [u8]), visit_byte_buf(Vec<u8>);
        other: visit_bool(bool), visit_i8(i8), visit_i16(i16), visit_i32(i32), visit_i64(i64),
            visit_i128(i128), visit_u8(u8), visit_u16(u16), visit_u32(u32), visit_u64(u64),
            visit_u128(u128), visit_f32(f32), visit_f64(f64), visit_char(char),
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let d = self.nested(d);
        self.inner.visit_some(d)
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let d = self.nested(d);
        self.inner.visit_newtype_struct(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let cut_short = matches!(self.shape, Shape::Open | Shape::Any);
        self.inner.visit_seq(BoundedAccess {
            inner: seq,
            budget: self.budget,
            cut_short,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let cut_short = self.shape == Shape::Open;
        self.inner.visit_map(BoundedAccess {
            inner: map,
            budget: self.budget,
            cut_short,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(BoundedAccess {
            inner: data,
            budget: self.budget,
            cut_short: false,
        })
    }
}

/// The elements, entries or variant of a value under a [`ReadBudget`].
struct BoundedAccess<'b, A> {
    inner: A,
    budget: &'b ReadBudget,
    /// A list or map of any length, which the budget bounds.
    cut_short: bool,
}

impl<'b, A> BoundedAccess<'b, A> {
    fn seed<S>(&self, inner: S, item: bool) -> BoundedSeed<'b, S> {
        BoundedSeed {
            inner,
            budget: self.budget,
            item,
        }
    }

    fn size_hint(&self, inner: Option<usize>) -> Option<usize> {
        match self.cut_short {
            true => inner.map(|n| n.min(self.budget.items_left.get())),
            false => inner,
        }
    }
}

/// A seed whose value is read [`Bounded`].
struct BoundedSeed<'b, S> {
    inner: S,
    budget: &'b ReadBudget,
    item: bool,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for BoundedSeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.deserialize(Bounded {
            inner: d,
            budget: self.budget,
            item: self.item,
        })
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for BoundedAccess<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        if self.cut_short && self.budget.spent() {
            while self.inner.next_element::<de::IgnoredAny>()?.is_some() {
                self.budget.exceeded.set(true);
            }
            return Ok(None);
        }
        let seed = self.seed(seed, self.cut_short);
        self.inner.next_element_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        BoundedAccess::size_hint(self, self.inner.size_hint())
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for BoundedAccess<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if self.cut_short && self.budget.spent() {
            while self.inner.next_key::<de::IgnoredAny>()?.is_some() {
                self.inner.next_value::<de::IgnoredAny>()?;
                self.budget.exceeded.set(true);
            }
            return Ok(None);
        }
        let seed = self.seed(seed, self.cut_short);
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.seed(seed, false);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        BoundedAccess::size_hint(self, self.inner.size_hint())
    }
}

impl<'b, 'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for BoundedAccess<'b, A> {
    type Error = A::Error;
    type Variant = BoundedAccess<'b, A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let budget = self.budget;
        let seed = self.seed(seed, false);
        self.inner.variant_seed(seed).map(|(value, variant)| {
            let variant = BoundedAccess {
                inner: variant,
                budget,
                cut_short: false,
            };
            (value, variant)
        })
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for BoundedAccess<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.seed(seed, false);
        self.inner.newtype_variant_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = Budgeted {
            inner: visitor,
            budget: self.budget,
            shape: Shape::Fixed,
        };
        self.inner.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = Budgeted {
            inner: visitor,
            budget: self.budget,
            shape: Shape::Fixed,
        };
        self.inner.struct_variant(fields, visitor)
    }
}

/// Reads a value and keeps nothing of it, decoding it as the full parser does.
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

/// An array of strings, checked and not built (`userInfo.groups`: a review
/// may carry a million of them, and no rule reads one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strings;

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_seq(StringsVisitor)
            .map(|()| Strings)
    }
}

struct StringsVisitor;

impl<'de> Visitor<'de> for StringsVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<AString>()?.is_some() {}
        Ok(())
    }
}

/// An object whose members are arrays of strings (not null), checked and not
/// built (`userInfo.extra`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StringLists;

impl<'de> Deserialize<'de> for StringLists {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(StringListsVisitor)
            .map(|()| StringLists)
    }
}

struct StringListsVisitor;

impl<'de> Visitor<'de> for StringListsVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of string arrays")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<AString>()?.is_some() {
            map.next_value::<Strings>()?;
        }
        Ok(())
    }
}

/// Any string, not kept; anything else is an error.
struct AString;

impl<'de> Deserialize<'de> for AString {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_str(AStringVisitor)
            .map(|()| AString)
    }
}

struct AStringVisitor;

impl<'de> Visitor<'de> for AStringVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Named {
        name: Option<String>,
    }

    #[test]
    fn refuses_what_the_full_parser_refuses() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for bad in [
            r#"{"a": "\ud800"}"#.as_bytes(),
            b"{\"a\": 1,}",
            b"{\"a\": \xff}",
            deep.as_bytes(),
            b"{} {}",
        ] {
            assert!(serde_json::from_slice::<serde_json::Value>(bad).is_err());
            // Skipped by the reader, still refused.
            assert!(
                from_slice::<Named>(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let named: Named =
            from_slice(br#"{"a": ["\u00e9", 1.5e3, null, true, {"b": {}}], "name": "x"}"#).unwrap();
        assert_eq!(named.name.as_deref(), Some("x"));
    }

    #[derive(Deserialize)]
    struct Listed {
        name: String,
        #[serde(default)]
        items: Vec<Named>,
        #[serde(default)]
        tags: std::collections::BTreeMap<String, String>,
    }

    fn bounded(text: &str, items: usize, text_bytes: usize) -> (serde_json::Result<Listed>, bool) {
        let budget = ReadBudget::new(items, text_bytes);
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let read = Listed::deserialize(Bounded::new(Strict(&mut deserializer), &budget))
            .and_then(|listed| deserializer.end().map(|()| listed));
        (read, budget.exceeded())
    }

    #[test]
    fn a_budget_cuts_lists_and_maps_short_and_says_so() {
        let text = r#"{"items": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                       "tags": {"x": "1", "y": "2"}, "name": "n"}"#;
        let (listed, exceeded) = bounded(text, 5, 100);
        assert_eq!(listed.unwrap().items.len(), 3);
        assert!(!exceeded, "exactly the budget is not past it");

        let (listed, exceeded) = bounded(text, 2, 100);
        let listed = listed.unwrap();
        assert_eq!(listed.items.len(), 2);
        assert!(listed.tags.is_empty());
        // A struct's fields are read whatever is left.
        assert_eq!(listed.name, "n");
        assert!(exceeded);

        let (listed, exceeded) = bounded(text, 100, 4);
        assert!(exceeded, "text past its budget");
        assert_eq!(listed.unwrap().name, "n");
    }

    #[test]
    fn what_a_budget_leaves_out_is_still_read_as_the_full_parser_does() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for broken in [r#""\ud800""#, deep.as_str(), "[1,]"] {
            let items = format!(r#"{{"name": "n", "items": [{{"name": "a"}}, {broken}]}}"#);
            let tags = format!(r#"{{"name": "n", "tags": {{"a": "1", "b": {broken}}}}}"#);
            for text in [items, tags] {
                assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
                assert!(bounded(&text, 1, 100).0.is_err(), "{text}");
            }
        }
    }

    #[test]
    fn string_lists_are_checked_without_being_built() {
        assert!(serde_json::from_str::<StringLists>(r#"{"a": ["x", "y"], "b": []}"#).is_ok());
        assert!(serde_json::from_str::<StringLists>(r#"{"a": null}"#).is_err());
        assert!(serde_json::from_str::<StringLists>(r#"{"a": [1]}"#).is_err());
        assert!(serde_json::from_str::<Option<Strings>>("null").is_ok());
        assert!(serde_json::from_str::<Strings>(r#"["a", 2]"#).is_err());
    }
}
