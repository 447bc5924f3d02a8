//! Rows read without a compile-time schema: a bot's tables change with its versions (freqtrade
//! migrates its own), and the same table lives in SQLite (dynamically typed: a FLOAT column
//! may hold an integer, a date is text) or PostgreSQL. Every value becomes a [`Val`], read by
//! the column's actual type, and the sources convert from there.

use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Postgres, Row, Sqlite, TypeInfo, ValueRef};

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Num(Decimal),
    Text(String),
    Bool(bool),
    Time(NaiveDateTime),
}

impl Val {
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    pub fn f64(&self) -> Option<f64> {
        match self {
            Val::Int(v) => Some(*v as f64),
            Val::Real(v) => Some(*v),
            Val::Num(d) => d.to_f64(),
            Val::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Val::Text(s) => s.trim().parse().ok(),
            Val::Null | Val::Time(_) => None,
        }
    }

    /// Exact for integers and NUMERIC; a REAL keeps the decimal digits of its shortest
    /// round-trip form (what Python prints), so sums match the bot's own float arithmetic
    /// to its last digit or so.
    pub fn decimal(&self) -> Option<Decimal> {
        match self {
            Val::Int(v) => Some(Decimal::from(*v)),
            Val::Num(d) => Some(*d),
            Val::Real(v) => Decimal::from_f64(*v),
            Val::Bool(b) => Some(if *b { Decimal::ONE } else { Decimal::ZERO }),
            Val::Text(s) => s.trim().parse().ok(),
            Val::Null | Val::Time(_) => None,
        }
    }

    pub fn i64(&self) -> Option<i64> {
        match self {
            Val::Int(v) => Some(*v),
            Val::Real(v) if v.fract() == 0.0 => Some(*v as i64),
            Val::Num(d) => d.to_i64(),
            Val::Bool(b) => Some(i64::from(*b)),
            Val::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// SQLite stores booleans as 0/1 integers (SQLAlchemy's `Boolean`).
    pub fn bool(&self) -> Option<bool> {
        match self {
            Val::Bool(b) => Some(*b),
            Val::Int(v) => Some(*v != 0),
            Val::Real(v) => Some(*v != 0.0),
            Val::Text(s) => match s.trim() {
                "1" | "true" | "TRUE" | "t" => Some(true),
                "0" | "false" | "FALSE" | "f" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&str> {
        match self {
            Val::Text(s) => Some(s),
            _ => None,
        }
    }

    /// A naive UTC date-time: PostgreSQL `timestamp`, or SQLAlchemy's SQLite text form
    /// (`2024-05-10 09:30:00.123456`, ISO `T` accepted too).
    pub fn time(&self) -> Option<NaiveDateTime> {
        match self {
            Val::Time(t) => Some(*t),
            Val::Text(s) => parse_naive(s),
            _ => None,
        }
    }
}

fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t);
        }
    }
    // A zone suffix (a hand-written row): convert to naive UTC.
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).naive_utc())
}

/// One SQLite row as values, by each value's storage class.
pub fn sqlite_row(row: &SqliteRow) -> Vec<Val> {
    (0..row.columns().len())
        .map(|i| {
            let Ok(v) = row.try_get_raw(i) else {
                return Val::Null;
            };
            if v.is_null() {
                return Val::Null;
            }
            let kind = match v.type_info().name() {
                "INTEGER" => 0,
                "REAL" => 1,
                _ => 2,
            };
            match kind {
                0 => <i64 as Decode<Sqlite>>::decode(v).map_or(Val::Null, Val::Int),
                1 => <f64 as Decode<Sqlite>>::decode(v).map_or(Val::Null, Val::Real),
                _ => <String as Decode<Sqlite>>::decode(v).map_or(Val::Null, Val::Text),
            }
        })
        .collect()
}

/// One PostgreSQL row as values, by each column's type.
pub fn pg_row(row: &PgRow) -> Vec<Val> {
    (0..row.columns().len())
        .map(|i| {
            let Ok(v) = row.try_get_raw(i) else {
                return Val::Null;
            };
            if v.is_null() {
                return Val::Null;
            }
            let ty = v.type_info().name().to_ascii_uppercase();
            let r = match ty.as_str() {
                "INT2" => <i16 as Decode<Postgres>>::decode(v).map(|x| Val::Int(x.into())),
                "INT4" => <i32 as Decode<Postgres>>::decode(v).map(|x| Val::Int(x.into())),
                "INT8" => <i64 as Decode<Postgres>>::decode(v).map(Val::Int),
                "FLOAT4" => <f32 as Decode<Postgres>>::decode(v).map(|x| Val::Real(x.into())),
                "FLOAT8" => <f64 as Decode<Postgres>>::decode(v).map(Val::Real),
                "NUMERIC" => <Decimal as Decode<Postgres>>::decode(v).map(Val::Num),
                "BOOL" => <bool as Decode<Postgres>>::decode(v).map(Val::Bool),
                "TIMESTAMP" => <NaiveDateTime as Decode<Postgres>>::decode(v).map(Val::Time),
                "TIMESTAMPTZ" => {
                    <DateTime<Utc> as Decode<Postgres>>::decode(v).map(|t| Val::Time(t.naive_utc()))
                }
                _ => <String as Decode<Postgres>>::decode(v).map(Val::Text),
            };
            r.unwrap_or(Val::Null)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(Val::Int(3).f64(), Some(3.0));
        assert_eq!(Val::Real(0.1).decimal(), Some("0.1".parse().unwrap()));
        assert_eq!(Val::Int(1).bool(), Some(true));
        let t = Val::Text("2024-05-10 09:30:00.123456".into())
            .time()
            .unwrap();
        assert_eq!(t.to_string(), "2024-05-10 09:30:00.123456");
        let t = Val::Text("2024-05-10 09:30:00".into()).time().unwrap();
        assert_eq!(t.to_string(), "2024-05-10 09:30:00");
        assert_eq!(Val::Null.f64(), None);
    }
}
