//! Reader for CTranslate2 `model.bin` (binary version 6): variables, scalars and aliases.
//!
//! The whole file is read into one buffer and every variable is a view into it, so a
//! model costs one copy of its bytes in memory. Every length in the file is checked
//! against the bytes that remain: a corrupt or truncated file gives a [`Ct2Error`].

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The only binary version this reader understands.
pub const SUPPORTED_VERSION: u32 = 6;

/// Element type of a variable, as coded in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    /// The type for a dtype code of the file, if known.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::BF16,
            _ => return None,
        })
    }

    /// The dtype code used in the file.
    pub fn code(self) -> u8 {
        match self {
            Self::F32 => 0,
            Self::I8 => 1,
            Self::I16 => 2,
            Self::I32 => 3,
            Self::F16 => 4,
            Self::BF16 => 5,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::BF16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F16 | Self::BF16)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "float32",
            Self::I8 => "int8",
            Self::I16 => "int16",
            Self::I32 => "int32",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
        })
    }
}

/// What can be wrong with a `model.bin`. Messages are self-contained (they do not
/// chain a `source()`), so callers can prefix the file's path without repeating text.
#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("cannot read {}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("unsupported binary version {0} (only version {SUPPORTED_VERSION} is supported)")]
    UnsupportedVersion(u32),
    #[error("truncated at byte {offset}: {what} needs {need} bytes but only {left} remain")]
    Truncated {
        offset: usize,
        what: String,
        need: u64,
        left: usize,
    },
    #[error("string at byte {offset} {problem}")]
    BadString {
        offset: usize,
        problem: &'static str,
    },
    #[error("variable {name}: unknown dtype code {code}")]
    UnknownDType { name: String, code: u8 },
    #[error(
        "variable {name}: shape {shape:?} of {dtype} needs {expected} bytes but the file gives {actual}"
    )]
    SizeMismatch {
        name: String,
        shape: Vec<usize>,
        dtype: DType,
        expected: u64,
        actual: u32,
    },
    #[error("variable {0} appears twice")]
    Duplicate(String),
    #[error("alias {alias} points to missing variable {target}")]
    DanglingAlias { alias: String, target: String },
    #[error("{0} unexpected bytes after the alias table")]
    TrailingBytes(usize),
    #[error("missing variable {0}")]
    MissingVariable(String),
    #[error("variable {name} should be an integer scalar but is {dtype} of shape {shape:?}")]
    NotIntegerScalar {
        name: String,
        dtype: DType,
        shape: Vec<usize>,
    },
}

/// One variable: a view into the model's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Variable<'a> {
    pub name: &'a str,
    /// Shape in the file's (row-major, numpy) order; empty for a scalar.
    pub shape: &'a [usize],
    pub dtype: DType,
    /// Raw little-endian element bytes; length is `num_elements() * dtype.size()`.
    pub data: &'a [u8],
}

impl Variable<'_> {
    pub fn num_elements(&self) -> usize {
        // Cannot overflow: checked against the byte count when parsing.
        self.shape.iter().product()
    }

    /// The value of a rank-0 integer variable (such as `encoder/num_heads`).
    pub fn scalar_i64(&self) -> Result<i64, Ct2Error> {
        let bad = || Ct2Error::NotIntegerScalar {
            name: self.name.to_owned(),
            dtype: self.dtype,
            shape: self.shape.to_vec(),
        };
        if !self.shape.is_empty() {
            return Err(bad());
        }
        let d = self.data;
        Ok(match self.dtype {
            DType::I8 => i64::from(i8::from_le_bytes([d[0]])),
            DType::I16 => i64::from(i16::from_le_bytes([d[0], d[1]])),
            DType::I32 => i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])),
            _ => return Err(bad()),
        })
    }
}

#[derive(Debug)]
struct Entry {
    name: String,
    shape: Vec<usize>,
    dtype: DType,
    data: Range<usize>,
}

/// A parsed `model.bin`.
#[derive(Debug)]
pub struct Ct2Model {
    buf: Vec<u8>,
    spec: String,
    revision: u32,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    /// (alias, index of the target entry), in file order.
    aliases: Vec<(String, usize)>,
}

impl Ct2Model {
    /// Reads and parses a `model.bin` file.
    pub fn open(path: &Path) -> Result<Self, Ct2Error> {
        let buf = std::fs::read(path).map_err(|err| Ct2Error::Io {
            path: path.to_owned(),
            err,
        })?;
        Self::from_bytes(buf)
    }

    /// Parses the bytes of a `model.bin`, keeping them as the backing buffer.
    pub fn from_bytes(buf: Vec<u8>) -> Result<Self, Ct2Error> {
        let mut c = Cursor { buf: &buf, pos: 0 };
        let version = c.u32("the binary version")?;
        if version != SUPPORTED_VERSION {
            return Err(Ct2Error::UnsupportedVersion(version));
        }
        let spec = c.string("the spec name")?;
        let revision = c.u32("the spec revision")?;
        let n_vars = c.u32("the variable count")?;

        // No capacity from the (untrusted) count: a corrupt count must not allocate.
        let mut entries = Vec::new();
        let mut by_name = HashMap::new();
        for _ in 0..n_vars {
            let name = c.string("a variable name")?;
            let rank = c.u8(&format!("the rank of {name}"))?;
            let mut shape = Vec::with_capacity(usize::from(rank));
            for _ in 0..rank {
                let dim = c.u32(&format!("the shape of {name}"))?;
                shape.push(dim as usize);
            }
            let code = c.u8(&format!("the dtype of {name}"))?;
            let dtype = DType::from_code(code).ok_or_else(|| Ct2Error::UnknownDType {
                name: name.clone(),
                code,
            })?;
            let n_bytes = c.u32(&format!("the byte count of {name}"))?;
            let expected = shape
                .iter()
                .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64));
            if expected != Some(u64::from(n_bytes)) {
                return Err(Ct2Error::SizeMismatch {
                    name,
                    shape,
                    dtype,
                    expected: expected.unwrap_or(u64::MAX),
                    actual: n_bytes,
                });
            }
            let data = c.take(n_bytes as usize, || format!("the data of {name}"))?;
            if by_name.insert(name.clone(), entries.len()).is_some() {
                return Err(Ct2Error::Duplicate(name));
            }
            entries.push(Entry {
                name,
                shape,
                dtype,
                data,
            });
        }

        let n_aliases = c.u32("the alias count")?;
        let mut aliases = Vec::new();
        for _ in 0..n_aliases {
            let alias = c.string("an alias name")?;
            let target = c.string(&format!("the target of alias {alias}"))?;
            let Some(&index) = by_name.get(&target) else {
                return Err(Ct2Error::DanglingAlias { alias, target });
            };
            if by_name.contains_key(&alias) || aliases.iter().any(|(a, _)| *a == alias) {
                return Err(Ct2Error::Duplicate(alias));
            }
            aliases.push((alias, index));
        }
        let left = buf.len() - c.pos;
        if left != 0 {
            return Err(Ct2Error::TrailingBytes(left));
        }
        Ok(Self {
            buf,
            spec,
            revision,
            entries,
            by_name,
            aliases,
        })
    }

    /// The spec name, e.g. `WhisperSpec`.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    pub fn revision(&self) -> u32 {
        self.revision
    }

    fn view(&self, index: usize) -> Variable<'_> {
        let e = &self.entries[index];
        Variable {
            name: &e.name,
            shape: &e.shape,
            dtype: e.dtype,
            data: &self.buf[e.data.clone()],
        }
    }

    /// Looks a variable up by name, following aliases (the returned name is the target's).
    pub fn get(&self, name: &str) -> Option<Variable<'_>> {
        let index = match self.by_name.get(name) {
            Some(&i) => i,
            None => self.aliases.iter().find(|(a, _)| a == name)?.1,
        };
        Some(self.view(index))
    }

    /// Like [`get`](Self::get), but a missing variable is an error naming it.
    pub fn require(&self, name: &str) -> Result<Variable<'_>, Ct2Error> {
        self.get(name)
            .ok_or_else(|| Ct2Error::MissingVariable(name.to_owned()))
    }

    /// The value of a rank-0 integer variable.
    pub fn scalar_i64(&self, name: &str) -> Result<i64, Ct2Error> {
        self.require(name)?.scalar_i64()
    }

    /// The stored variables in file order (aliases not included).
    pub fn variables(&self) -> impl Iterator<Item = Variable<'_>> {
        (0..self.entries.len()).map(|i| self.view(i))
    }

    /// (alias, target) name pairs in file order.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.aliases
            .iter()
            .map(|(a, i)| (a.as_str(), self.entries[*i].name.as_str()))
    }

    pub fn is_alias(&self, name: &str) -> bool {
        self.aliases.iter().any(|(a, _)| a == name)
    }
}

/// Bounds-checked little-endian reads over the file's bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: impl FnOnce() -> String) -> Result<Range<usize>, Ct2Error> {
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(Ct2Error::Truncated {
                offset: self.pos,
                what: what(),
                need: n as u64,
                left,
            });
        }
        let range = self.pos..self.pos + n;
        self.pos += n;
        Ok(range)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Ct2Error> {
        let r = self.take(N, || what.to_owned())?;
        let mut out = [0; N];
        out.copy_from_slice(&self.buf[r]);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, Ct2Error> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, Ct2Error> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, Ct2Error> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A `u16` length that counts a trailing NUL, the bytes, then the NUL.
    fn string(&mut self, what: &str) -> Result<String, Ct2Error> {
        let offset = self.pos;
        let len = usize::from(self.u16(what)?);
        let r = self.take(len, || what.to_owned())?;
        let bytes = &self.buf[r];
        let Some((&0, text)) = bytes.split_last() else {
            return Err(Ct2Error::BadString {
                offset,
                problem: "lacks its trailing NUL",
            });
        };
        String::from_utf8(text.to_vec()).map_err(|_| Ct2Error::BadString {
            offset,
            problem: "is not valid UTF-8",
        })
    }
}

/// Builds `model.bin` bytes for tests.
#[cfg(test)]
pub(crate) mod testutil {
    use super::DType;

    pub(crate) struct Ct2Builder {
        pub version: u32,
        pub spec: String,
        pub revision: u32,
        pub vars: Vec<(String, Vec<usize>, DType, Vec<u8>)>,
        pub aliases: Vec<(String, String)>,
    }

    impl Ct2Builder {
        pub fn new() -> Self {
            Self {
                version: 6,
                spec: "WhisperSpec".into(),
                revision: 3,
                vars: Vec::new(),
                aliases: Vec::new(),
            }
        }

        pub fn var(&mut self, name: &str, shape: &[usize], dtype: DType, data: Vec<u8>) {
            self.vars.push((name.into(), shape.to_vec(), dtype, data));
        }

        /// A float variable from f32 values, stored as `dtype` (f32, f16 or bf16).
        pub fn floats(&mut self, name: &str, shape: &[usize], dtype: DType, values: &[f32]) {
            assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
            let data = match dtype {
                DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                DType::F16 => values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
                DType::BF16 => values
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
                other => panic!("not a float type: {other}"),
            };
            self.var(name, shape, dtype, data);
        }

        pub fn alias(&mut self, alias: &str, target: &str) {
            self.aliases.push((alias.into(), target.into()));
        }

        pub fn remove(&mut self, name: &str) {
            self.vars.retain(|v| v.0 != name);
        }

        pub fn bytes(&self) -> Vec<u8> {
            fn string(out: &mut Vec<u8>, s: &str) {
                out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            let mut out = Vec::new();
            out.extend_from_slice(&self.version.to_le_bytes());
            string(&mut out, &self.spec);
            out.extend_from_slice(&self.revision.to_le_bytes());
            out.extend_from_slice(&(self.vars.len() as u32).to_le_bytes());
            for (name, shape, dtype, data) in &self.vars {
                string(&mut out, name);
                out.push(shape.len() as u8);
                for d in shape {
                    out.extend_from_slice(&(*d as u32).to_le_bytes());
                }
                out.push(dtype.code());
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
            out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
            for (a, t) in &self.aliases {
                string(&mut out, a);
                string(&mut out, t);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::Ct2Builder;
    use super::*;

    fn sample() -> Ct2Builder {
        let mut b = Ct2Builder::new();
        b.var(
            "encoder/num_heads",
            &[],
            DType::I16,
            6i16.to_le_bytes().to_vec(),
        );
        b.var("decoder/activation", &[], DType::I8, vec![3]);
        b.var(
            "decoder/alignment_layer",
            &[],
            DType::I16,
            (-1i16).to_le_bytes().to_vec(),
        );
        b.var(
            "big/heads",
            &[],
            DType::I32,
            70000i32.to_le_bytes().to_vec(),
        );
        b.floats(
            "decoder/embeddings/weight",
            &[3, 2],
            DType::F16,
            &[1., 2., 3., 4., 5., 6.],
        );
        b.floats("encoder/layer_norm/gamma", &[2], DType::F32, &[0.5, -0.25]);
        b.alias("decoder/projection/weight", "decoder/embeddings/weight");
        b
    }

    #[test]
    fn parses_header_variables_and_scalars() {
        let m = Ct2Model::from_bytes(sample().bytes()).unwrap();
        assert_eq!(m.spec(), "WhisperSpec");
        assert_eq!(m.revision(), 3);
        assert_eq!(m.variables().count(), 6);
        assert_eq!(m.scalar_i64("encoder/num_heads").unwrap(), 6);
        assert_eq!(m.scalar_i64("decoder/activation").unwrap(), 3);
        assert_eq!(m.scalar_i64("decoder/alignment_layer").unwrap(), -1);
        assert_eq!(m.scalar_i64("big/heads").unwrap(), 70000);

        let g = m.require("encoder/layer_norm/gamma").unwrap();
        assert_eq!(g.shape, &[2]);
        assert_eq!(g.dtype, DType::F32);
        assert_eq!(
            g.data,
            [0.5f32.to_le_bytes(), (-0.25f32).to_le_bytes()].concat()
        );

        let e = m.require("decoder/embeddings/weight").unwrap();
        assert_eq!(
            (e.shape, e.dtype, e.num_elements()),
            (&[3, 2][..], DType::F16, 6)
        );
        assert_eq!(&e.data[..2], &half::f16::from_f32(1.0).to_le_bytes());
    }

    #[test]
    fn resolves_aliases() {
        let m = Ct2Model::from_bytes(sample().bytes()).unwrap();
        let aliases: Vec<_> = m.aliases().collect();
        assert_eq!(
            aliases,
            [("decoder/projection/weight", "decoder/embeddings/weight")]
        );
        assert!(m.is_alias("decoder/projection/weight"));
        assert!(!m.is_alias("decoder/embeddings/weight"));
        let p = m.require("decoder/projection/weight").unwrap();
        assert_eq!(p.name, "decoder/embeddings/weight");
        assert_eq!(p.data, m.require("decoder/embeddings/weight").unwrap().data);
        // Aliases are not listed as variables of their own.
        assert!(m.variables().all(|v| v.name != "decoder/projection/weight"));
    }

    #[test]
    fn scalar_errors() {
        let m = Ct2Model::from_bytes(sample().bytes()).unwrap();
        let err = m.scalar_i64("encoder/layer_norm/gamma").unwrap_err();
        assert!(matches!(err, Ct2Error::NotIntegerScalar { .. }), "{err}");
        let err = m.scalar_i64("decoder/num_heads").unwrap_err();
        assert_eq!(err.to_string(), "missing variable decoder/num_heads");
    }

    #[test]
    fn rejects_other_versions() {
        let mut b = sample();
        b.version = 5;
        let err = Ct2Model::from_bytes(b.bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported binary version 5 (only version 6 is supported)"
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().bytes();
        for len in 0..bytes.len() {
            let err = Ct2Model::from_bytes(bytes[..len].to_vec()).unwrap_err();
            assert!(
                matches!(err, Ct2Error::Truncated { .. }),
                "length {len}: {err}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let err = Ct2Model::from_bytes(longer).unwrap_err();
        assert!(matches!(err, Ct2Error::TrailingBytes(1)), "{err}");
    }

    #[test]
    fn truncated_data_names_the_variable() {
        let bytes = sample().bytes();
        // Cut inside the last variable's data (the gamma floats, followed by the aliases).
        let alias_table = 4 + 2 * (2 + "decoder/projection/weight".len() + 1) - 1;
        let cut = bytes.len() - alias_table - 3;
        let err = Ct2Model::from_bytes(bytes[..cut].to_vec()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("the data of encoder/layer_norm/gamma needs 8 bytes"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_corrupt_fields() {
        let mut b = Ct2Builder::new();
        b.var("x", &[2], DType::F32, vec![0; 7]);
        let err = Ct2Model::from_bytes(b.bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                Ct2Error::SizeMismatch {
                    expected: 8,
                    actual: 7,
                    ..
                }
            ),
            "{err}"
        );

        let mut b = Ct2Builder::new();
        b.var(
            "x",
            &[u32::MAX as usize, u32::MAX as usize, 4],
            DType::F32,
            vec![],
        );
        let err = Ct2Model::from_bytes(b.bytes()).unwrap_err();
        assert!(matches!(err, Ct2Error::SizeMismatch { .. }), "{err}");

        let mut b = Ct2Builder::new();
        b.var("x", &[1], DType::F32, vec![0; 4]);
        let mut bytes = b.bytes();
        let dtype_at = bytes.len() - 4 - 4 - 4 - 1;
        bytes[dtype_at] = 9;
        let err = Ct2Model::from_bytes(bytes).unwrap_err();
        assert_eq!(err.to_string(), "variable x: unknown dtype code 9");

        let mut b = Ct2Builder::new();
        b.var("x", &[1], DType::F32, vec![0; 4]);
        b.var("x", &[1], DType::F32, vec![0; 4]);
        let err = Ct2Model::from_bytes(b.bytes()).unwrap_err();
        assert_eq!(err.to_string(), "variable x appears twice");

        let mut b = Ct2Builder::new();
        b.alias("a", "nowhere");
        let err = Ct2Model::from_bytes(b.bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "alias a points to missing variable nowhere"
        );

        // A string whose last byte is not NUL.
        let mut bytes = Ct2Builder::new().bytes();
        bytes[4 + 2 + "WhisperSpec".len()] = b'!';
        let err = Ct2Model::from_bytes(bytes).unwrap_err();
        assert_eq!(err.to_string(), "string at byte 4 lacks its trailing NUL");
    }

    #[test]
    fn open_reports_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        let err = Ct2Model::open(&path).unwrap_err();
        assert!(err.to_string().starts_with("cannot read "), "{err}");
        std::fs::write(&path, sample().bytes()).unwrap();
        assert!(Ct2Model::open(&path).is_ok());
    }
}
