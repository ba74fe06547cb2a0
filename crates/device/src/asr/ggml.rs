//! Writer of whisper.cpp's ggml model file: magic, hparams, mel filters, vocabulary, tensors.
//!
//! Layout (all integers little-endian i32 unless noted), as whisper.cpp 1.8 loads it:
//! magic, 11 hparams, mel filters (n_mel, n_fft, n_mel*n_fft f32), vocabulary (count,
//! then u32 length + bytes per token), then tensors to the end of the file, each
//! n_dims, name length, type, dims in ggml order (numpy shape reversed), name, data.
//!
//! Quantised matrices (q8_0, q5_1) are written in ggml's blocks by [`super::quant`].

use std::io::{self, Write};

use half::{bf16, f16};

use super::mel::MelFilters;
use super::quant;

/// `"ggml"` as a little-endian u32.
pub const GGML_MAGIC: u32 = 0x6767_6d6c;
/// `ftype` for a file whose matrices are f16 (1-D tensors stay f32).
pub const FTYPE_MOSTLY_F16: i32 = 1;

/// Model hyperparameters, in header order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl Hparams {
    /// The header's fields in file order.
    pub fn to_array(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    pub fn from_array(a: [i32; 11]) -> Self {
        let [
            n_vocab,
            n_audio_ctx,
            n_audio_state,
            n_audio_head,
            n_audio_layer,
            n_text_ctx,
            n_text_state,
            n_text_head,
            n_text_layer,
            n_mels,
            ftype,
        ] = a;
        Self {
            n_vocab,
            n_audio_ctx,
            n_audio_state,
            n_audio_head,
            n_audio_layer,
            n_text_ctx,
            n_text_state,
            n_text_head,
            n_text_layer,
            n_mels,
            ftype,
        }
    }
}

/// Element type of a written tensor (ggml's type codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    /// Blocks of 32: an f16 scale and 32 signed bytes (34 bytes).
    Q8_0,
    /// Blocks of 32: f16 scale and minimum, 32 high bits, 16 bytes of low nibbles (24 bytes).
    Q5_1,
}

impl GgmlType {
    /// ggml's `enum ggml_type` values.
    pub fn code(self) -> i32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
        }
    }

    /// Elements per block: 1 for the float types.
    pub fn block_len(self) -> usize {
        match self {
            Self::F32 | Self::F16 => 1,
            Self::Q8_0 | Self::Q5_1 => quant::BLOCK,
        }
    }

    /// Bytes of one row of `n` elements (`n` a multiple of [`Self::block_len`]).
    pub fn row_bytes(self, n: usize) -> usize {
        match self {
            Self::F32 => 4 * n,
            Self::F16 => 2 * n,
            Self::Q8_0 => n / quant::BLOCK * quant::Q8_0_BYTES,
            Self::Q5_1 => n / quant::BLOCK * quant::Q5_1_BYTES,
        }
    }

    /// Bytes of a tensor of numpy-order `shape` (rows last-dimension long).
    pub fn tensor_bytes(self, shape: &[usize]) -> u64 {
        let row = shape.last().copied().unwrap_or(1);
        let rows: usize = shape[..shape.len().saturating_sub(1)].iter().product();
        rows as u64 * self.row_bytes(row) as u64
    }

    fn is_quantised(self) -> bool {
        self.block_len() > 1
    }
}

/// Source elements as raw little-endian bytes; converted while writing.
#[derive(Debug, Clone, Copy)]
pub enum Elements<'a> {
    F32(&'a [u8]),
    F16(&'a [u8]),
    BF16(&'a [u8]),
}

impl Elements<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::F32(b) | Self::F16(b) | Self::BF16(b) => b,
        }
    }

    fn elem_size(&self) -> usize {
        match self {
            Self::F32(_) => 4,
            Self::F16(_) | Self::BF16(_) => 2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GgmlError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("tensor {name}: shape {shape:?} has {expected} elements but the data has {actual}")]
    ElementCount {
        name: String,
        shape: Vec<usize>,
        expected: usize,
        actual: usize,
    },
    #[error("tensor {name}: rank {rank} is outside whisper.cpp's 1..=4")]
    Rank { name: String, rank: usize },
    #[error("{what} is {value}, more than the file's i32 fields hold")]
    TooLarge { what: String, value: usize },
    #[error("tensor {name}: rows of {row} elements do not split into blocks of {block}")]
    BlockSize {
        name: String,
        row: usize,
        block: usize,
    },
    #[error("mel filters: {n_mels}x{n_bins} needs {} values, got {len}", n_mels * n_bins)]
    MelSize {
        n_mels: usize,
        n_bins: usize,
        len: usize,
    },
}

fn as_i32(what: impl FnOnce() -> String, value: usize) -> Result<i32, GgmlError> {
    i32::try_from(value).map_err(|_| GgmlError::TooLarge {
        what: what(),
        value,
    })
}

/// Streams a ggml file into `W`; counts the bytes written.
pub struct GgmlWriter<W: Write> {
    out: W,
    written: u64,
    /// Reused for element conversion, so no tensor is ever copied whole.
    scratch: Vec<u8>,
}

/// Elements converted per chunk.
const CHUNK: usize = 16 * 1024;

impl<W: Write> GgmlWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            scratch: Vec::new(),
        }
    }

    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn put_i32(&mut self, v: i32) -> io::Result<()> {
        self.put(&v.to_le_bytes())
    }

    /// Magic, hparams, mel filters and vocabulary (tokens as raw bytes).
    pub fn write_header(
        &mut self,
        hparams: &Hparams,
        mel: &MelFilters,
        vocab: &[Vec<u8>],
    ) -> Result<(), GgmlError> {
        if mel.data.len() != mel.n_mels * mel.n_bins {
            return Err(GgmlError::MelSize {
                n_mels: mel.n_mels,
                n_bins: mel.n_bins,
                len: mel.data.len(),
            });
        }
        self.put(&GGML_MAGIC.to_le_bytes())?;
        for v in hparams.to_array() {
            self.put_i32(v)?;
        }
        self.put_i32(as_i32(|| "n_mel".into(), mel.n_mels)?)?;
        self.put_i32(as_i32(|| "n_fft".into(), mel.n_bins)?)?;
        let mel_bytes: Vec<u8> = mel.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.put(&mel_bytes)?;

        self.put_i32(as_i32(|| "the token count".into(), vocab.len())?)?;
        for (i, token) in vocab.iter().enumerate() {
            let len = u32::try_from(token.len()).map_err(|_| GgmlError::TooLarge {
                what: format!("the length of token {i}"),
                value: token.len(),
            })?;
            self.put(&len.to_le_bytes())?;
            self.put(token)?;
        }
        Ok(())
    }

    /// One tensor. `shape` is in numpy order (rows first); it is written reversed, as
    /// ggml counts dimensions from the fastest-varying one. `data` is converted to `ty`.
    pub fn write_tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        ty: GgmlType,
        data: Elements<'_>,
    ) -> Result<(), GgmlError> {
        let bad_count = |actual| GgmlError::ElementCount {
            name: name.to_owned(),
            shape: shape.to_vec(),
            expected: shape.iter().product(),
            actual,
        };
        let bytes = data.bytes();
        let n = bytes.len() / data.elem_size();
        if !bytes.len().is_multiple_of(data.elem_size()) {
            return Err(bad_count(n));
        }
        if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(n) {
            return Err(bad_count(n));
        }
        if !(1..=4).contains(&shape.len()) {
            return Err(GgmlError::Rank {
                name: name.to_owned(),
                rank: shape.len(),
            });
        }
        // ggml aborts the process on a row that is not whole blocks: refuse it here.
        let row = shape.last().copied().unwrap_or(1);
        if !row.is_multiple_of(ty.block_len()) {
            return Err(GgmlError::BlockSize {
                name: name.to_owned(),
                row,
                block: ty.block_len(),
            });
        }

        self.put_i32(shape.len() as i32)?;
        self.put_i32(as_i32(|| format!("the name length of {name}"), name.len())?)?;
        self.put_i32(ty.code())?;
        for &d in shape.iter().rev() {
            self.put_i32(as_i32(|| format!("a dimension of {name}"), d)?)?;
        }
        self.put(name.as_bytes())?;
        if ty.is_quantised() {
            self.put_quantised(data, row, ty)?;
        } else {
            self.put_elements(data, ty)?;
        }
        Ok(())
    }

    /// Rows widened to f32 and quantised, a few rows at a time so no tensor is
    /// ever held whole in f32. `row` is a whole number of `ty`'s blocks.
    fn put_quantised(&mut self, data: Elements<'_>, row: usize, ty: GgmlType) -> io::Result<()> {
        let size = data.elem_size();
        let rows_per_chunk = (CHUNK / row).max(1);
        let mut floats: Vec<f32> = Vec::with_capacity(rows_per_chunk * row);
        let mut scratch = std::mem::take(&mut self.scratch);
        for chunk in data.bytes().chunks(rows_per_chunk * row * size) {
            floats.clear();
            floats.extend(chunk.chunks_exact(size).map(|e| widen(data, e)));
            scratch.clear();
            match ty {
                GgmlType::Q5_1 => quant::q5_1(&floats, &mut scratch),
                _ => quant::q8_0(&floats, &mut scratch),
            }
            self.put(&scratch)?;
        }
        self.scratch = scratch;
        Ok(())
    }

    fn put_elements(&mut self, data: Elements<'_>, ty: GgmlType) -> io::Result<()> {
        // Same type on both sides: both little-endian, copy as is.
        match (data, ty) {
            (Elements::F32(b), GgmlType::F32) | (Elements::F16(b), GgmlType::F16) => {
                return self.put(b);
            }
            _ => {}
        }
        let size = data.elem_size();
        let mut scratch = std::mem::take(&mut self.scratch);
        for chunk in data.bytes().chunks(CHUNK * size) {
            scratch.clear();
            for e in chunk.chunks_exact(size) {
                let v = widen(data, e);
                match ty {
                    GgmlType::F32 => scratch.extend_from_slice(&v.to_le_bytes()),
                    // Quantised types go through `put_quantised`.
                    _ => scratch.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
                }
            }
            self.put(&scratch)?;
        }
        self.scratch = scratch;
        Ok(())
    }
}

/// One source element `e` (of `data`'s type) as f32.
fn widen(data: Elements<'_>, e: &[u8]) -> f32 {
    match data {
        Elements::F32(_) => f32::from_le_bytes([e[0], e[1], e[2], e[3]]),
        Elements::F16(_) => f16::from_le_bytes([e[0], e[1]]).to_f32(),
        Elements::BF16(_) => bf16::from_le_bytes([e[0], e[1]]).to_f32(),
    }
}

/// A minimal reader of the files written above, for tests.
#[cfg(test)]
pub(crate) mod testread {
    use super::{GGML_MAGIC, GgmlType, Hparams};

    pub(crate) struct Tensor {
        pub name: String,
        /// ggml order (fastest-varying first).
        pub dims: Vec<usize>,
        pub ty: i32,
        pub data: Vec<u8>,
    }

    impl Tensor {
        /// Values widened to f32, in storage order.
        pub fn values(&self) -> Vec<f32> {
            match self.ty {
                0 => self
                    .data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                1 => self
                    .data
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32())
                    .collect(),
                t => panic!("type {t}"),
            }
        }
    }

    pub(crate) struct File {
        pub hparams: Hparams,
        pub mel_n: usize,
        pub mel_bins: usize,
        pub mel: Vec<f32>,
        pub vocab: Vec<Vec<u8>>,
        pub tensors: Vec<Tensor>,
    }

    impl File {
        pub fn tensor(&self, name: &str) -> &Tensor {
            self.tensors
                .iter()
                .find(|t| t.name == name)
                .unwrap_or_else(|| panic!("no tensor {name}"))
        }
    }

    struct Reader<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    impl Reader<'_> {
        fn take(&mut self, n: usize) -> Vec<u8> {
            let s = self.bytes[self.pos..self.pos + n].to_vec();
            self.pos += n;
            s
        }

        fn i32(&mut self) -> i32 {
            i32::from_le_bytes(self.take(4).try_into().unwrap())
        }
    }

    pub(crate) fn parse(bytes: &[u8]) -> File {
        let mut r = Reader { bytes, pos: 0 };
        assert_eq!(r.i32() as u32, GGML_MAGIC);
        let mut h = [0i32; 11];
        for v in &mut h {
            *v = r.i32();
        }
        let mel_n = r.i32() as usize;
        let mel_bins = r.i32() as usize;
        let mel = r
            .take(mel_n * mel_bins * 4)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let n_tokens = r.i32() as usize;
        let vocab = (0..n_tokens)
            .map(|_| {
                let len = r.i32() as usize;
                r.take(len)
            })
            .collect();
        let mut tensors = Vec::new();
        while r.pos < bytes.len() {
            let n_dims = r.i32() as usize;
            let name_len = r.i32() as usize;
            let ty = r.i32();
            let dims: Vec<usize> = (0..n_dims).map(|_| r.i32() as usize).collect();
            let name = String::from_utf8(r.take(name_len)).unwrap();
            let ggml_ty = [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q5_1]
                .into_iter()
                .find(|t| t.code() == ty)
                .unwrap_or_else(|| panic!("type {ty}"));
            let numpy: Vec<usize> = dims.iter().rev().copied().collect();
            let data = r.take(ggml_ty.tensor_bytes(&numpy) as usize);
            tensors.push(Tensor {
                name,
                dims,
                ty,
                data,
            });
        }
        File {
            hparams: Hparams::from_array(h),
            mel_n,
            mel_bins,
            mel,
            vocab,
            tensors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hparams() -> Hparams {
        Hparams::from_array([10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 1])
    }

    fn mel() -> MelFilters {
        MelFilters {
            n_mels: 2,
            n_bins: 3,
            data: vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
        }
    }

    #[test]
    fn header_layout_is_byte_exact() {
        let mut w = GgmlWriter::new(Vec::new());
        let vocab = vec![b"a".to_vec(), Vec::new(), b" the".to_vec()];
        w.write_header(&hparams(), &mel(), &vocab).unwrap();
        let n = w.bytes_written();
        let bytes = w.into_inner();
        assert_eq!(n as usize, bytes.len());

        let mut want = Vec::new();
        want.extend_from_slice(b"lmgg"); // 0x67676d6c little-endian
        for v in [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 1, 2, 3] {
            want.extend_from_slice(&i32::to_le_bytes(v));
        }
        for v in [0.5f32, 1.0, 1.5, 2.0, 2.5, 3.0] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.extend_from_slice(&3i32.to_le_bytes());
        want.extend_from_slice(&[1, 0, 0, 0, b'a', 0, 0, 0, 0, 4, 0, 0, 0]);
        want.extend_from_slice(b" the");
        assert_eq!(bytes, want);

        let f = testread::parse(&bytes);
        assert_eq!(f.hparams, hparams());
        assert_eq!((f.mel_n, f.mel_bins), (2, 3));
        assert_eq!(f.mel, mel().data);
        assert_eq!(f.vocab, vocab);
        assert!(f.tensors.is_empty());
    }

    #[test]
    fn tensor_header_reverses_dims_and_converts() {
        let src: Vec<f32> = vec![1.0, -2.5, 0.125, 65504.0, 3.0, 1e-3];
        let f32_bytes: Vec<u8> = src.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f16_bytes: Vec<u8> = src
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect();
        let bf16_bytes: Vec<u8> = src
            .iter()
            .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
            .collect();

        let mut w = GgmlWriter::new(Vec::new());
        w.write_tensor("a", &[2, 3], GgmlType::F16, Elements::F32(&f32_bytes))
            .unwrap();
        w.write_tensor("b", &[2, 3], GgmlType::F32, Elements::F16(&f16_bytes))
            .unwrap();
        w.write_tensor("c", &[6], GgmlType::F16, Elements::F16(&f16_bytes))
            .unwrap();
        w.write_tensor("d", &[3, 2, 1], GgmlType::F32, Elements::BF16(&bf16_bytes))
            .unwrap();
        let bytes = w.into_inner();

        // First tensor's header by hand: n_dims, name length, type, dims reversed, name.
        assert_eq!(header_of_two_dims(&bytes), [2, 1, 1, 3, 2]);
        assert_eq!(bytes[20], b'a');

        let mut all = Vec::from(&b"lmgg"[..]);
        for v in [0i32; 11].iter().chain(&[0, 0, 0]) {
            all.extend_from_slice(&v.to_le_bytes());
        }
        all.extend_from_slice(&bytes);
        let f = testread::parse(&all);
        let t = |n: &str| f.tensor(n);
        assert_eq!((t("a").dims.clone(), t("a").ty), (vec![3, 2], 1));
        assert_eq!(t("a").data, f16_bytes);
        assert_eq!((t("b").ty, t("b").data.len()), (0, 24));
        let widened: Vec<f32> = src.iter().map(|v| f16::from_f32(*v).to_f32()).collect();
        assert_eq!(t("b").values(), widened);
        assert_eq!(t("c").data, f16_bytes);
        assert_eq!(t("d").dims, vec![1, 2, 3]);
        let bf: Vec<f32> = src.iter().map(|v| bf16::from_f32(*v).to_f32()).collect();
        assert_eq!(t("d").values(), bf);
    }

    /// A 2-D tensor's header with a one-byte name: n_dims, name length, type, dims.
    fn header_of_two_dims(bytes: &[u8]) -> Vec<i32> {
        bytes[..20]
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn large_tensors_convert_across_chunks() {
        let n = CHUNK * 2 + 7;
        let src: Vec<u8> = (0..n)
            .flat_map(|i| ((i % 2048) as f32).to_le_bytes())
            .collect();
        let mut w = GgmlWriter::new(Vec::new());
        w.write_tensor("x", &[n], GgmlType::F16, Elements::F32(&src))
            .unwrap();
        let bytes = w.into_inner();
        let data = &bytes[4 * 4 + 1..];
        assert_eq!(data.len(), n * 2);
        for (i, c) in data.chunks_exact(2).enumerate() {
            assert_eq!(f16::from_le_bytes([c[0], c[1]]).to_f32(), (i % 2048) as f32);
        }
    }

    #[test]
    fn quantised_tensors_are_written_row_by_row_in_blocks_under_their_type_code() {
        // Two rows of 64 (two blocks each), from f16 as a model ships them;
        // enough rows that the writer quantises in more than one chunk.
        let rows = CHUNK / 64 + 3;
        let src: Vec<f32> = (0..rows * 64)
            .map(|i| f16::from_f32(((i * 37 % 101) as f32 - 50.0) / 64.0).to_f32())
            .collect();
        let f16_bytes: Vec<u8> = src
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect();
        for (ty, code, quantise) in [
            (GgmlType::Q8_0, 8, quant::q8_0 as fn(&[f32], &mut Vec<u8>)),
            (GgmlType::Q5_1, 7, quant::q5_1),
        ] {
            let mut w = GgmlWriter::new(Vec::new());
            w.write_tensor("m", &[rows, 64], ty, Elements::F16(&f16_bytes))
                .unwrap();
            let bytes = w.into_inner();
            assert_eq!(header_of_two_dims(&bytes), [2, 1, code, 64, rows as i32]);
            let mut want = Vec::new();
            quantise(&src, &mut want);
            assert_eq!(want.len() as u64, ty.tensor_bytes(&[rows, 64]));
            assert_eq!(&bytes[21..], &want[..], "{ty:?}");
        }
    }

    #[test]
    fn a_row_that_is_not_whole_blocks_is_refused_before_anything_is_written() {
        let mut w = GgmlWriter::new(Vec::new());
        let err = w
            .write_tensor(
                "m",
                &[2, 48],
                GgmlType::Q5_1,
                Elements::F32(&[0; 2 * 48 * 4]),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "tensor m: rows of 48 elements do not split into blocks of 32"
        );
        assert_eq!(w.bytes_written(), 0);
    }

    #[test]
    fn rejects_inconsistent_tensors() {
        let mut w = GgmlWriter::new(Vec::new());
        let err = w
            .write_tensor("x", &[2, 2], GgmlType::F32, Elements::F32(&[0; 12]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "tensor x: shape [2, 2] has 4 elements but the data has 3"
        );
        let err = w
            .write_tensor("y", &[1, 1, 1, 1, 1], GgmlType::F32, Elements::F32(&[0; 4]))
            .unwrap_err();
        assert!(matches!(err, GgmlError::Rank { rank: 5, .. }), "{err}");
        let err = w
            .write_tensor("z", &[2], GgmlType::F32, Elements::F16(&[0; 3]))
            .unwrap_err();
        assert!(matches!(err, GgmlError::ElementCount { .. }), "{err}");
        assert_eq!(
            w.bytes_written(),
            0,
            "nothing written for a rejected tensor"
        );
    }
}
