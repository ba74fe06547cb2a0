//! Converts a CTranslate2 Whisper model directory into one whisper.cpp ggml file.
//!
//! Reads `model.bin` and `vocabulary.txt`, checks every tensor against the shapes
//! whisper.cpp will expect (so a bad model fails here, with a name, rather than at
//! load time), then streams the ggml file to a temporary file beside the output,
//! fsyncs it and renames it into place. Peak memory is about one copy of `model.bin`.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use voicepay_core::durable::{self, Existing};

use super::Quant;
use super::ct2::{Ct2Error, Ct2Model, DType, Variable};
use super::ggml::{Elements, FTYPE_MOSTLY_F16, GgmlError, GgmlType, GgmlWriter, Hparams};
use super::mel::whisper_mel_filters;

pub const MODEL_FILE: &str = "model.bin";
pub const VOCAB_FILE: &str = "vocabulary.txt";
const END_OF_TEXT: &str = "<|endoftext|>";

/// What a conversion produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertSummary {
    pub hparams: Hparams,
    /// Tensors written (the tied output projection is not one of them).
    pub n_tensors: usize,
    /// Size of the ggml file.
    pub bytes_written: u64,
}

/// Something in `model.bin` that cannot become a whisper.cpp model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Format(#[from] Ct2Error),
    #[error("spec is {0}, not WhisperSpec")]
    NotWhisper(String),
    #[error("variable {name} has shape {found:?}, expected {expected}")]
    Shape {
        name: String,
        found: Vec<usize>,
        expected: String,
    },
    #[error(
        "variable {name} is {dtype}; only float32, float16 and bfloat16 weights convert (quantized models are not supported)"
    )]
    DType { name: String, dtype: DType },
    #[error("no {0}/layer_0 variables")]
    NoLayers(&'static str),
    #[error("{name} is {value}: {problem}")]
    BadValue {
        name: &'static str,
        value: i64,
        problem: &'static str,
    },
}

/// Something in `vocabulary.txt` that does not fit the model or whisper.cpp.
#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    #[error("not UTF-8 (first bad byte at {0})")]
    NotUtf8(usize),
    #[error("{found} tokens but the model's embedding has {n_vocab} rows")]
    Count { found: usize, n_vocab: usize },
    #[error("no {END_OF_TEXT} token")]
    NoEndOfText,
    #[error("token {index} {token:?} has a character outside the GPT-2 byte alphabet")]
    NotByteLevel { index: usize, token: String },
}

/// Why [`convert_dir`] failed. Messages name the file and what was missing or wrong;
/// they are self-contained (no `source()` chain) so they print once.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{MODEL_FILE} not found in {}", .0.display())]
    ModelNotFound(PathBuf),
    #[error("{VOCAB_FILE} not found in {}", .0.display())]
    VocabNotFound(PathBuf),
    #[error("{}: {reason}", path.display())]
    Model { path: PathBuf, reason: ModelError },
    #[error("{}: {reason}", path.display())]
    Vocab { path: PathBuf, reason: VocabError },
    #[error("output path {} has no file name", .0.display())]
    BadOutput(PathBuf),
    #[error("{context}: {err}")]
    Io { context: String, err: io::Error },
    #[error("writing {}: {reason}", path.display())]
    Write { path: PathBuf, reason: GgmlError },
}

impl From<durable::WriteError> for ConvertError {
    fn from(e: durable::WriteError) -> Self {
        ConvertError::Io {
            context: format!("cannot {} {}", e.step, e.path.display()),
            err: e.source,
        }
    }
}

/// Converts `ct2_dir` (`model.bin` + `vocabulary.txt`) into the f16 ggml file `out`,
/// replacing it atomically. `progress(done, total)` counts tensor data bytes; it is
/// called once with `done == 0` and after each tensor.
pub fn convert_dir(
    ct2_dir: &Path,
    out: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<ConvertSummary, ConvertError> {
    convert_dir_as(ct2_dir, out, Quant::F16, progress)
}

/// [`convert_dir`] with the weight matrices stored as `quant`.
pub fn convert_dir_as(
    ct2_dir: &Path,
    out: &Path,
    quant: Quant,
    progress: &dyn Fn(u64, u64),
) -> Result<ConvertSummary, ConvertError> {
    if out.file_name().is_none() {
        return Err(ConvertError::BadOutput(out.to_owned()));
    }
    let model_path = ct2_dir.join(MODEL_FILE);
    let vocab_path = ct2_dir.join(VOCAB_FILE);
    // Check both before reading tens of megabytes.
    if !model_path.is_file() {
        return Err(ConvertError::ModelNotFound(ct2_dir.to_owned()));
    }
    if !vocab_path.is_file() {
        return Err(ConvertError::VocabNotFound(ct2_dir.to_owned()));
    }
    let model_err = |reason: ModelError| ConvertError::Model {
        path: model_path.clone(),
        reason,
    };
    let model = Ct2Model::open(&model_path).map_err(|e| model_err(e.into()))?;
    let hparams = Hparams {
        ftype: quant.ftype(),
        ..whisper_hparams(&model).map_err(model_err)?
    };
    let plan = plan_tensors(&model, &hparams, quant).map_err(model_err)?;

    let vocab_bytes = std::fs::read(&vocab_path).map_err(|err| ConvertError::Io {
        context: format!("cannot read {}", vocab_path.display()),
        err,
    })?;
    let vocab = ggml_vocab(&vocab_bytes, hparams.n_vocab as usize).map_err(|reason| {
        ConvertError::Vocab {
            path: vocab_path.clone(),
            reason,
        }
    })?;
    drop(vocab_bytes);

    let total: u64 = plan.iter().map(|t| t.out_bytes()).sum();
    let bytes_written =
        durable::write_atomically(out, 0o644, Existing::Replace, |file, tmp_path| {
            let werr = |reason| ConvertError::Write {
                path: tmp_path.to_owned(),
                reason,
            };
            let mut w = GgmlWriter::new(file);
            let mel = whisper_mel_filters(hparams.n_mels as usize);
            w.write_header(&hparams, &mel, &vocab).map_err(werr)?;
            let mut done = 0;
            progress(done, total);
            for t in &plan {
                w.write_tensor(&t.name, &t.shape, t.ty, t.src)
                    .map_err(werr)?;
                done += t.out_bytes();
                progress(done, total);
            }
            Ok::<_, ConvertError>(w.bytes_written())
        })?;
    Ok(ConvertSummary {
        hparams,
        n_tensors: plan.len(),
        bytes_written,
    })
}

/// Derives whisper.cpp's hparams from the tensors' shapes and the head-count scalars.
pub fn whisper_hparams(model: &Ct2Model) -> Result<Hparams, ModelError> {
    if model.spec() != "WhisperSpec" {
        return Err(ModelError::NotWhisper(model.spec().to_owned()));
    }
    let shaped = |name: &str, rank: usize, expected: &str| -> Result<Vec<usize>, ModelError> {
        let v = model.require(name)?;
        if v.shape.len() != rank {
            return Err(ModelError::Shape {
                name: name.to_owned(),
                found: v.shape.to_vec(),
                expected: expected.to_owned(),
            });
        }
        Ok(v.shape.to_vec())
    };
    let emb = shaped("decoder/embeddings/weight", 2, "[n_vocab, n_text_state]")?;
    let conv1 = shaped("encoder/conv1/weight", 3, "[n_audio_state, n_mels, 3]")?;
    let enc_pos = shaped(
        "encoder/position_encodings/encodings",
        2,
        "[n_audio_ctx, n_audio_state]",
    )?;
    let dec_pos = shaped(
        "decoder/position_encodings/encodings",
        2,
        "[n_text_ctx, n_text_state]",
    )?;
    let n_audio_state = conv1[0];
    let n_text_state = emb[1];
    let heads = |name: &'static str, state: usize| -> Result<i32, ModelError> {
        let h = model.scalar_i64(name)?;
        if h <= 0 || state as i64 % h != 0 {
            return Err(ModelError::BadValue {
                name,
                value: h,
                problem: "must be positive and divide the state size",
            });
        }
        fit(name, h as usize)
    };
    Ok(Hparams {
        n_vocab: fit("n_vocab", emb[0])?,
        n_audio_ctx: fit("n_audio_ctx", enc_pos[0])?,
        n_audio_state: fit("n_audio_state", n_audio_state)?,
        n_audio_head: heads("encoder/num_heads", n_audio_state)?,
        n_audio_layer: fit("n_audio_layer", count_layers(model, "encoder")?)?,
        n_text_ctx: fit("n_text_ctx", dec_pos[0])?,
        n_text_state: fit("n_text_state", n_text_state)?,
        n_text_head: heads("decoder/num_heads", n_text_state)?,
        n_text_layer: fit("n_text_layer", count_layers(model, "decoder")?)?,
        n_mels: fit("n_mels", conv1[1])?,
        ftype: FTYPE_MOSTLY_F16,
    })
}

fn fit(name: &'static str, value: usize) -> Result<i32, ModelError> {
    i32::try_from(value).map_err(|_| ModelError::BadValue {
        name,
        value: value as i64,
        problem: "too large for the ggml header",
    })
}

/// One more than the highest `{side}/layer_N` index; gaps surface later as missing variables.
fn count_layers(model: &Ct2Model, side: &'static str) -> Result<usize, ModelError> {
    let prefix = format!("{side}/layer_");
    let highest = model
        .variables()
        .filter_map(|v| {
            let rest = v.name.strip_prefix(&prefix)?;
            rest.split('/').next()?.parse::<usize>().ok()
        })
        .max();
    match highest {
        Some(n) => Ok(n + 1),
        None => Err(ModelError::NoLayers(side)),
    }
}

/// One output tensor: its ggml name, numpy-order shape, type and source elements.
struct Planned<'a> {
    name: String,
    shape: Vec<usize>,
    ty: GgmlType,
    src: Elements<'a>,
}

impl Planned<'_> {
    fn out_bytes(&self) -> u64 {
        self.ty.tensor_bytes(&self.shape)
    }
}

/// whisper.cpp's type rules: matrices f16; 1-D tensors, the conv biases (stored as
/// [d, 1]) and the positional embeddings f32. (f16 everywhere else is required: an
/// all-f32 file loads but asserts in im2col on first use.) A quantised file
/// quantises what whisper.cpp's `quantize` does: the 2-D tensors but those four;
/// the 3-D convolution weights stay f16, as whisper.cpp's loader expects.
fn ggml_type(name: &str, shape: &[usize], quant: Quant) -> GgmlType {
    let always_f32 = [
        "encoder.conv1.bias",
        "encoder.conv2.bias",
        "encoder.positional_embedding",
        "decoder.positional_embedding",
    ];
    if shape.len() < 2 || always_f32.contains(&name) {
        GgmlType::F32
    } else if shape.len() == 2 {
        quant.matrix_type()
    } else {
        GgmlType::F16
    }
}

struct Planner<'a> {
    model: &'a Ct2Model,
    quant: Quant,
    out: Vec<Planned<'a>>,
}

impl<'a> Planner<'a> {
    /// A float variable of exactly `shape`.
    fn var(&self, name: &str, shape: &[usize]) -> Result<Variable<'a>, ModelError> {
        let v = self.model.require(name)?;
        if v.shape != shape {
            return Err(ModelError::Shape {
                name: name.to_owned(),
                found: v.shape.to_vec(),
                expected: format!("{shape:?}"),
            });
        }
        if !v.dtype.is_float() {
            return Err(ModelError::DType {
                name: name.to_owned(),
                dtype: v.dtype,
            });
        }
        Ok(v)
    }

    /// Rows `rows` of `v` (all of it when `None`) as tensor `name` of numpy shape `shape`.
    fn push(
        &mut self,
        name: String,
        shape: Vec<usize>,
        v: Variable<'a>,
        rows: Option<Range<usize>>,
    ) {
        let data = match rows {
            None => v.data,
            Some(r) => {
                // Shape was checked by `var`, so the rows are in bounds.
                let row_bytes = v.shape[1..].iter().product::<usize>() * v.dtype.size();
                &v.data[r.start * row_bytes..r.end * row_bytes]
            }
        };
        let src = match v.dtype {
            DType::F32 => Elements::F32(data),
            DType::F16 => Elements::F16(data),
            // `var` admits float types only.
            _ => Elements::BF16(data),
        };
        let ty = ggml_type(&name, &shape, self.quant);
        self.out.push(Planned {
            name,
            shape,
            ty,
            src,
        });
    }

    fn whole(&mut self, src: &str, dst: String, shape: &[usize]) -> Result<(), ModelError> {
        let v = self.var(src, shape)?;
        self.push(dst, shape.to_vec(), v, None);
        Ok(())
    }

    fn layer_norm(&mut self, src: &str, dst: &str, d: usize) -> Result<(), ModelError> {
        self.whole(&format!("{src}/gamma"), format!("{dst}.weight"), &[d])?;
        self.whole(&format!("{src}/beta"), format!("{dst}.bias"), &[d])
    }

    fn linear(
        &mut self,
        src: &str,
        dst: &str,
        n_out: usize,
        n_in: usize,
    ) -> Result<(), ModelError> {
        self.whole(
            &format!("{src}/weight"),
            format!("{dst}.weight"),
            &[n_out, n_in],
        )?;
        self.whole(&format!("{src}/bias"), format!("{dst}.bias"), &[n_out])
    }

    /// A fused projection whose rows stack `parts.len()` blocks of `d` rows; each part
    /// goes to `dst.{part}` with its bias if it has one. Key biases are dropped: they
    /// add the same q·b to every logit of a query, which softmax cancels, and
    /// whisper.cpp has no tensor for them.
    fn fused(
        &mut self,
        src: &str,
        dst: &str,
        d: usize,
        parts: &[(&str, bool)],
    ) -> Result<(), ModelError> {
        let n = parts.len();
        let w = self.var(&format!("{src}/weight"), &[n * d, d])?;
        let b = self.var(&format!("{src}/bias"), &[n * d])?;
        for (i, &(part, has_bias)) in parts.iter().enumerate() {
            let rows = i * d..(i + 1) * d;
            self.push(
                format!("{dst}.{part}.weight"),
                vec![d, d],
                w,
                Some(rows.clone()),
            );
            if has_bias {
                self.push(format!("{dst}.{part}.bias"), vec![d], b, Some(rows));
            }
        }
        Ok(())
    }

    fn self_attention(&mut self, src: &str, dst: &str, d: usize) -> Result<(), ModelError> {
        self.layer_norm(&format!("{src}/layer_norm"), &format!("{dst}.attn_ln"), d)?;
        let qkv = [("query", true), ("key", false), ("value", true)];
        self.fused(&format!("{src}/linear_0"), &format!("{dst}.attn"), d, &qkv)?;
        self.linear(&format!("{src}/linear_1"), &format!("{dst}.attn.out"), d, d)
    }

    fn ffn(&mut self, src: &str, dst: &str, d: usize) -> Result<(), ModelError> {
        // whisper.cpp hard-codes the 4x hidden width.
        self.layer_norm(&format!("{src}/layer_norm"), &format!("{dst}.mlp_ln"), d)?;
        self.linear(
            &format!("{src}/linear_0"),
            &format!("{dst}.mlp.0"),
            4 * d,
            d,
        )?;
        self.linear(
            &format!("{src}/linear_1"),
            &format!("{dst}.mlp.2"),
            d,
            4 * d,
        )
    }

    fn cross_attention(&mut self, src: &str, dst: &str, d: usize) -> Result<(), ModelError> {
        self.layer_norm(
            &format!("{src}/layer_norm"),
            &format!("{dst}.cross_attn_ln"),
            d,
        )?;
        self.linear(
            &format!("{src}/linear_0"),
            &format!("{dst}.cross_attn.query"),
            d,
            d,
        )?;
        let kv = [("key", false), ("value", true)];
        self.fused(
            &format!("{src}/linear_1"),
            &format!("{dst}.cross_attn"),
            d,
            &kv,
        )?;
        self.linear(
            &format!("{src}/linear_2"),
            &format!("{dst}.cross_attn.out"),
            d,
            d,
        )
    }
}

/// Every tensor whisper.cpp loads, mapped from the CTranslate2 variables and checked
/// against the shapes it will expect. The alias `decoder/projection/weight` is not
/// written: whisper.cpp ties the output projection to the token embedding.
fn plan_tensors<'a>(
    model: &'a Ct2Model,
    hp: &Hparams,
    quant: Quant,
) -> Result<Vec<Planned<'a>>, ModelError> {
    // All fields were built from usize values and are non-negative.
    let [
        n_vocab,
        n_audio_ctx,
        da,
        _,
        n_audio_layer,
        n_text_ctx,
        dt,
        _,
        n_text_layer,
        n_mels,
        _,
    ] = hp.to_array().map(|v| v as usize);
    let mut p = Planner {
        model,
        quant,
        out: Vec::new(),
    };

    p.whole(
        "encoder/position_encodings/encodings",
        "encoder.positional_embedding".into(),
        &[n_audio_ctx, da],
    )?;
    p.whole(
        "encoder/conv1/weight",
        "encoder.conv1.weight".into(),
        &[da, n_mels, 3],
    )?;
    p.whole(
        "encoder/conv2/weight",
        "encoder.conv2.weight".into(),
        &[da, da, 3],
    )?;
    for conv in ["conv1", "conv2"] {
        // whisper.cpp adds the bias by broadcasting a [1, d] (ggml order) tensor.
        let v = p.var(&format!("encoder/{conv}/bias"), &[da])?;
        p.push(format!("encoder.{conv}.bias"), vec![da, 1], v, None);
    }
    for i in 0..n_audio_layer {
        let (src, dst) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
        p.self_attention(&format!("{src}/self_attention"), &dst, da)?;
        p.ffn(&format!("{src}/ffn"), &dst, da)?;
    }
    p.layer_norm("encoder/layer_norm", "encoder.ln_post", da)?;

    p.whole(
        "decoder/embeddings/weight",
        "decoder.token_embedding.weight".into(),
        &[n_vocab, dt],
    )?;
    p.whole(
        "decoder/position_encodings/encodings",
        "decoder.positional_embedding".into(),
        &[n_text_ctx, dt],
    )?;
    for i in 0..n_text_layer {
        let (src, dst) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
        p.self_attention(&format!("{src}/self_attention"), &dst, dt)?;
        p.cross_attention(&format!("{src}/attention"), &dst, dt)?;
        p.ffn(&format!("{src}/ffn"), &dst, dt)?;
    }
    p.layer_norm("decoder/layer_norm", "decoder.ln", dt)?;
    Ok(p.out)
}

/// The tokens whisper.cpp reads from the file: those before `<|endoftext|>`, as raw
/// bytes (whisper.cpp adds the special tokens itself). `vocabulary.txt` has one token
/// per line, split on `\n` only; the file must list exactly `n_vocab` tokens, which
/// catches a vocabulary taken from another model.
pub fn ggml_vocab(text: &[u8], n_vocab: usize) -> Result<Vec<Vec<u8>>, VocabError> {
    let text = std::str::from_utf8(text).map_err(|e| VocabError::NotUtf8(e.valid_up_to()))?;
    let body = text.strip_suffix('\n').unwrap_or(text);
    let tokens: Vec<&str> = body.split('\n').collect();
    if tokens.len() != n_vocab {
        return Err(VocabError::Count {
            found: tokens.len(),
            n_vocab,
        });
    }
    let eot = tokens
        .iter()
        .position(|t| *t == END_OF_TEXT)
        .ok_or(VocabError::NoEndOfText)?;
    tokens[..eot]
        .iter()
        .enumerate()
        .map(|(index, token)| {
            decode_byte_level(token).ok_or_else(|| VocabError::NotByteLevel {
                index,
                token: (*token).to_owned(),
            })
        })
        .collect()
}

/// Inverse of GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for
/// themselves, the other 68 bytes were shifted to U+0100.. in increasing order
/// (so "Ġ" is a space and "Ċ" a newline). `None` if a character is outside the table.
pub fn decode_byte_level(token: &str) -> Option<Vec<u8>> {
    token.chars().map(char_to_byte).collect()
}

fn char_to_byte(c: char) -> Option<u8> {
    let c = u32::from(c);
    match c {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => u8::try_from(c).ok(),
        0x100..=0x143 => {
            let n = c - 0x100;
            let b = match n {
                0..=32 => n,              // 0x00..=0x20
                33..=66 => 0x7F + n - 33, // 0x7F..=0xA0
                _ => 0xAD,                // soft hyphen
            };
            u8::try_from(b).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::super::ct2::testutil::Ct2Builder;
    use super::super::ggml::testread;
    use super::*;

    const D: usize = 4;
    const HEADS: i16 = 2;
    const N_MELS: usize = 80;
    const AUDIO_CTX: usize = 6;
    const TEXT_CTX: usize = 5;
    const VOCAB: [&str; 8] = [
        "!",
        "Ġthe",
        "hello",
        "Ċ",
        "Ã©t",
        "<|endoftext|>",
        "<|startoftranscript|>",
        "<|notimestamps|>",
    ];

    /// Values exact in f16 and bf16 (multiples of 1/8 in [-32, 32)), distinct per seed.
    fn pattern(seed: usize, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((seed * 37 + i * 3) % 512) as f32 / 8.0 - 32.0)
            .collect()
    }

    /// A tiny Whisper (d=4, 2 heads, 1+1 layers) with all float tensors as `dtype`;
    /// returns the builder and every variable's values.
    fn tiny(dtype: DType) -> (Ct2Builder, HashMap<String, Vec<f32>>) {
        let mut shapes: Vec<(String, Vec<usize>)> = vec![
            ("encoder/conv1/weight".into(), vec![D, N_MELS, 3]),
            ("encoder/conv1/bias".into(), vec![D]),
            ("encoder/conv2/weight".into(), vec![D, D, 3]),
            ("encoder/conv2/bias".into(), vec![D]),
            (
                "encoder/position_encodings/encodings".into(),
                vec![AUDIO_CTX, D],
            ),
            ("encoder/layer_norm/gamma".into(), vec![D]),
            ("encoder/layer_norm/beta".into(), vec![D]),
            ("decoder/embeddings/weight".into(), vec![VOCAB.len(), D]),
            (
                "decoder/position_encodings/encodings".into(),
                vec![TEXT_CTX, D],
            ),
            ("decoder/layer_norm/gamma".into(), vec![D]),
            ("decoder/layer_norm/beta".into(), vec![D]),
        ];
        let mut linear = |p: &str, o: usize, i: usize| {
            shapes.push((format!("{p}/weight"), vec![o, i]));
            shapes.push((format!("{p}/bias"), vec![o]));
        };
        for side in ["encoder", "decoder"] {
            let l = format!("{side}/layer_0");
            linear(&format!("{l}/self_attention/linear_0"), 3 * D, D);
            linear(&format!("{l}/self_attention/linear_1"), D, D);
            linear(&format!("{l}/ffn/linear_0"), 4 * D, D);
            linear(&format!("{l}/ffn/linear_1"), D, 4 * D);
            if side == "decoder" {
                linear(&format!("{l}/attention/linear_0"), D, D);
                linear(&format!("{l}/attention/linear_1"), 2 * D, D);
                linear(&format!("{l}/attention/linear_2"), D, D);
            }
        }
        for side in ["encoder", "decoder"] {
            let mut norms = vec!["self_attention", "ffn"];
            if side == "decoder" {
                norms.push("attention");
            }
            for n in norms {
                for g in ["gamma", "beta"] {
                    shapes.push((format!("{side}/layer_0/{n}/layer_norm/{g}"), vec![D]));
                }
            }
        }

        let mut b = Ct2Builder::new();
        let mut values = HashMap::new();
        // Flags CTranslate2 stores beside the weights; the converter ignores them.
        b.var("decoder/activation", &[], DType::I8, vec![3]);
        b.var(
            "decoder/alignment_layer",
            &[],
            DType::I16,
            (-1i16).to_le_bytes().to_vec(),
        );
        b.var(
            "encoder/num_heads",
            &[],
            DType::I16,
            HEADS.to_le_bytes().to_vec(),
        );
        b.var(
            "decoder/num_heads",
            &[],
            DType::I16,
            HEADS.to_le_bytes().to_vec(),
        );
        for (seed, (name, shape)) in shapes.into_iter().enumerate() {
            let n = shape.iter().product();
            let mut v = pattern(seed, n);
            if name.ends_with("self_attention/linear_0/weight") {
                v = (0..n).map(|i| i as f32).collect(); // row r, column c = 4r + c
            } else if name.ends_with("self_attention/linear_0/bias") {
                v = vec![1., 2., 3., 4., 0., 0., 0., 0., 9., 10., 11., 12.]; // [bq; 0; bv]
            } else if name.ends_with("attention/linear_1/weight") && name.contains("/attention/") {
                v = (0..n).map(|i| 100.0 + i as f32).collect();
            } else if name.ends_with("/attention/linear_1/bias") {
                v = vec![0., 0., 0., 0., -1., -2., -3., -4.]; // [0; bv]
            }
            b.floats(&name, &shape, dtype, &v);
            values.insert(name, v);
        }
        b.alias("decoder/projection/weight", "decoder/embeddings/weight");
        (b, values)
    }

    fn vocab_text() -> String {
        VOCAB.iter().map(|t| format!("{t}\n")).collect()
    }

    fn write_dir(b: &Ct2Builder, vocab: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.bin"), b.bytes()).unwrap();
        std::fs::write(dir.path().join("vocabulary.txt"), vocab).unwrap();
        dir
    }

    fn convert(b: &Ct2Builder) -> (ConvertSummary, Vec<u8>) {
        let dir = write_dir(b, &vocab_text());
        let out = dir.path().join("ggml.bin");
        let summary = convert_dir(dir.path(), &out, &|_, _| {}).unwrap();
        (summary, std::fs::read(out).unwrap())
    }

    fn convert_err(b: &Ct2Builder, vocab: &str) -> String {
        let dir = write_dir(b, vocab);
        let out = dir.path().join("ggml.bin");
        let err = convert_dir(dir.path(), &out, &|_, _| {}).unwrap_err();
        assert!(!out.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "temporary file left behind");
        err.to_string()
    }

    /// whisper.cpp's tensor list with its ggml-order dims, written out independently.
    fn whisper_cpp_tensors() -> Vec<(String, Vec<usize>)> {
        let d = D;
        let mut t: Vec<(String, Vec<usize>)> = vec![
            ("encoder.positional_embedding".into(), vec![d, AUDIO_CTX]),
            ("encoder.conv1.weight".into(), vec![3, N_MELS, d]),
            ("encoder.conv1.bias".into(), vec![1, d]),
            ("encoder.conv2.weight".into(), vec![3, d, d]),
            ("encoder.conv2.bias".into(), vec![1, d]),
            ("encoder.ln_post.weight".into(), vec![d]),
            ("encoder.ln_post.bias".into(), vec![d]),
            ("decoder.positional_embedding".into(), vec![d, TEXT_CTX]),
            (
                "decoder.token_embedding.weight".into(),
                vec![d, VOCAB.len()],
            ),
            ("decoder.ln.weight".into(), vec![d]),
            ("decoder.ln.bias".into(), vec![d]),
        ];
        for side in ["encoder", "decoder"] {
            let p = format!("{side}.blocks.0");
            let mut block = vec![
                ("mlp_ln.weight", vec![d]),
                ("mlp_ln.bias", vec![d]),
                ("mlp.0.weight", vec![d, 4 * d]),
                ("mlp.0.bias", vec![4 * d]),
                ("mlp.2.weight", vec![4 * d, d]),
                ("mlp.2.bias", vec![d]),
                ("attn_ln.weight", vec![d]),
                ("attn_ln.bias", vec![d]),
                ("attn.query.weight", vec![d, d]),
                ("attn.query.bias", vec![d]),
                ("attn.key.weight", vec![d, d]),
                ("attn.value.weight", vec![d, d]),
                ("attn.value.bias", vec![d]),
                ("attn.out.weight", vec![d, d]),
                ("attn.out.bias", vec![d]),
            ];
            if side == "decoder" {
                block.extend([
                    ("cross_attn_ln.weight", vec![d]),
                    ("cross_attn_ln.bias", vec![d]),
                    ("cross_attn.query.weight", vec![d, d]),
                    ("cross_attn.query.bias", vec![d]),
                    ("cross_attn.key.weight", vec![d, d]),
                    ("cross_attn.value.weight", vec![d, d]),
                    ("cross_attn.value.bias", vec![d]),
                    ("cross_attn.out.weight", vec![d, d]),
                    ("cross_attn.out.bias", vec![d]),
                ]);
            }
            t.extend(block.into_iter().map(|(n, s)| (format!("{p}.{n}"), s)));
        }
        t
    }

    #[test]
    fn converts_tiny_model() {
        let (b, values) = tiny(DType::F16);
        let dir = write_dir(&b, &vocab_text());
        let out = dir.path().join("ggml.bin");
        let calls = RefCell::new(Vec::new());
        let summary =
            convert_dir(dir.path(), &out, &|d, t| calls.borrow_mut().push((d, t))).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let f = testread::parse(&bytes);

        let want = Hparams {
            n_vocab: 8,
            n_audio_ctx: 6,
            n_audio_state: 4,
            n_audio_head: 2,
            n_audio_layer: 1,
            n_text_ctx: 5,
            n_text_state: 4,
            n_text_head: 2,
            n_text_layer: 1,
            n_mels: 80,
            ftype: 1,
        };
        assert_eq!(summary.hparams, want);
        assert_eq!(f.hparams, want);
        assert_eq!(summary.bytes_written, bytes.len() as u64);

        let mel = whisper_mel_filters(80);
        assert_eq!((f.mel_n, f.mel_bins), (80, 201));
        assert_eq!(f.mel, mel.data);

        let vocab: Vec<&[u8]> = f.vocab.iter().map(|v| v.as_slice()).collect();
        assert_eq!(
            vocab,
            [&b"!"[..], b" the", b"hello", b"\n", "ét".as_bytes()]
        );

        // Exactly whisper.cpp's tensors, with its shapes; no output projection.
        let expected = whisper_cpp_tensors();
        assert_eq!(summary.n_tensors, expected.len());
        assert_eq!(f.tensors.len(), expected.len());
        for (name, dims) in &expected {
            let t = f.tensor(name);
            assert_eq!(&t.dims, dims, "{name}");
            let f32_expected = dims.len() == 1
                || name.ends_with("positional_embedding")
                || name.starts_with("encoder.conv") && name.ends_with(".bias");
            assert_eq!(t.ty, if f32_expected { 0 } else { 1 }, "type of {name}");
        }
        assert!(f.tensors.iter().all(|t| !t.name.contains("projection")));

        // Whole-tensor mappings carry the values unchanged.
        for (ct2, ggml) in [
            ("encoder/conv1/weight", "encoder.conv1.weight"),
            ("encoder/conv1/bias", "encoder.conv1.bias"),
            (
                "encoder/position_encodings/encodings",
                "encoder.positional_embedding",
            ),
            (
                "encoder/layer_0/ffn/linear_1/weight",
                "encoder.blocks.0.mlp.2.weight",
            ),
            (
                "encoder/layer_0/ffn/layer_norm/gamma",
                "encoder.blocks.0.mlp_ln.weight",
            ),
            ("encoder/layer_norm/beta", "encoder.ln_post.bias"),
            (
                "decoder/embeddings/weight",
                "decoder.token_embedding.weight",
            ),
            (
                "decoder/layer_0/attention/layer_norm/beta",
                "decoder.blocks.0.cross_attn_ln.bias",
            ),
            (
                "decoder/layer_0/attention/linear_0/bias",
                "decoder.blocks.0.cross_attn.query.bias",
            ),
            (
                "decoder/layer_0/attention/linear_2/weight",
                "decoder.blocks.0.cross_attn.out.weight",
            ),
            (
                "decoder/layer_0/self_attention/linear_1/bias",
                "decoder.blocks.0.attn.out.bias",
            ),
            ("decoder/layer_norm/gamma", "decoder.ln.weight"),
        ] {
            assert_eq!(f.tensor(ggml).values(), values[ct2], "{ct2} -> {ggml}");
        }

        // Progress: starts at 0, ends at the total, one call per tensor after the first.
        let calls = calls.into_inner();
        assert_eq!(calls.len(), expected.len() + 1);
        let total = calls[0].1;
        assert_eq!(calls[0].0, 0);
        assert_eq!(*calls.last().unwrap(), (total, total));
        assert!(calls.windows(2).all(|w| w[0].0 < w[1].0 && w[1].1 == total));
        let data_bytes: u64 = f.tensors.iter().map(|t| t.data.len() as u64).sum();
        assert_eq!(total, data_bytes);
    }

    #[test]
    fn splits_fused_self_attention() {
        let (summary, bytes) = convert(&tiny(DType::F16).0);
        assert_eq!(summary.n_tensors, 15 + 24 + 11);
        let f = testread::parse(&bytes);
        let range = |a: usize, b: usize| (a..b).map(|v| v as f32).collect::<Vec<_>>();
        for side in ["encoder", "decoder"] {
            let p = format!("{side}.blocks.0.attn");
            assert_eq!(
                f.tensor(&format!("{p}.query.weight")).values(),
                range(0, 16)
            );
            assert_eq!(f.tensor(&format!("{p}.key.weight")).values(), range(16, 32));
            assert_eq!(
                f.tensor(&format!("{p}.value.weight")).values(),
                range(32, 48)
            );
            let qb = f.tensor(&format!("{p}.query.bias"));
            assert_eq!((qb.ty, qb.values()), (0, vec![1., 2., 3., 4.]));
            let vb = f.tensor(&format!("{p}.value.bias"));
            assert_eq!((vb.ty, vb.values()), (0, vec![9., 10., 11., 12.]));
            assert!(f.tensors.iter().all(|t| t.name != format!("{p}.key.bias")));
        }
    }

    #[test]
    fn splits_fused_cross_attention_key_value() {
        let (_, bytes) = convert(&tiny(DType::F16).0);
        let f = testread::parse(&bytes);
        let p = "decoder.blocks.0.cross_attn";
        let range = |a: usize, b: usize| (a..b).map(|v| 100.0 + v as f32).collect::<Vec<_>>();
        assert_eq!(f.tensor(&format!("{p}.key.weight")).values(), range(0, 16));
        assert_eq!(
            f.tensor(&format!("{p}.value.weight")).values(),
            range(16, 32)
        );
        assert_eq!(
            f.tensor(&format!("{p}.value.bias")).values(),
            [-1., -2., -3., -4.]
        );
        assert!(f.tensors.iter().all(|t| t.name != format!("{p}.key.bias")));
    }

    #[test]
    fn f32_and_bf16_sources_give_the_same_file() {
        // Values are exact in every format, so f32 -> f16 for matrices and
        // f16 -> f32 for 1-D tensors must reproduce the f16 source's file byte for byte.
        let (_, from_f16) = convert(&tiny(DType::F16).0);
        let (_, from_f32) = convert(&tiny(DType::F32).0);
        let (_, from_bf16) = convert(&tiny(DType::BF16).0);
        assert!(from_f16 == from_f32, "f32 source differs");
        assert!(from_f16 == from_bf16, "bf16 source differs");
    }

    #[test]
    fn f32_source_rounds_to_nearest_f16() {
        let (mut b, _) = tiny(DType::F32);
        let name = "encoder/layer_0/ffn/linear_0/weight";
        b.remove(name);
        let v: Vec<f32> = (0..64).map(|i| 0.1 * i as f32).collect();
        b.floats(name, &[4 * D, D], DType::F32, &v);
        let f16_src = pattern(3, D); // a 1-D f16 tensor among f32 ones
        b.remove("encoder/layer_0/ffn/linear_0/bias");
        let bias: Vec<f32> = (0..16).map(|i| 1.0 / 3.0 + i as f32).collect();
        b.floats(
            "encoder/layer_0/ffn/linear_0/bias",
            &[4 * D],
            DType::F16,
            &bias,
        );
        b.remove("encoder/layer_norm/gamma");
        b.floats("encoder/layer_norm/gamma", &[D], DType::F16, &f16_src);

        let (_, bytes) = convert(&b);
        let f = testread::parse(&bytes);
        let w = f.tensor("encoder.blocks.0.mlp.0.weight");
        assert_eq!(w.ty, 1);
        let want: Vec<f32> = v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect();
        assert_eq!(w.values(), want);
        let bb = f.tensor("encoder.blocks.0.mlp.0.bias");
        assert_eq!(bb.ty, 0);
        let want: Vec<f32> = bias
            .iter()
            .map(|x| half::f16::from_f32(*x).to_f32())
            .collect();
        assert_eq!(bb.values(), want);
        assert_eq!(f.tensor("encoder.ln_post.weight").values(), f16_src);
    }

    #[test]
    fn decodes_byte_level_tokens() {
        assert_eq!(decode_byte_level("Ġthe").unwrap(), b" the");
        assert_eq!(decode_byte_level("ĊĠ").unwrap(), b"\n ");
        assert_eq!(decode_byte_level("Ã©").unwrap(), "é".as_bytes());
        assert_eq!(decode_byte_level("").unwrap(), b"");
        assert_eq!(decode_byte_level("a b"), None); // a raw space is not in the table
        assert_eq!(decode_byte_level("€"), None);

        // The table is GPT-2's bytes_to_unicode, inverted: build that forward and check
        // every byte round-trips.
        let printable: Vec<u32> = (0x21..=0x7E)
            .chain(0xA1..=0xAC)
            .chain(0xAE..=0xFF)
            .collect();
        let mut shifted = 0;
        for byte in 0u32..256 {
            let c = if printable.contains(&byte) {
                byte
            } else {
                shifted += 1;
                255 + shifted
            };
            let s = char::from_u32(c).unwrap().to_string();
            assert_eq!(decode_byte_level(&s), Some(vec![byte as u8]), "byte {byte}");
        }
        assert_eq!(shifted, 68);
    }

    #[test]
    fn vocabulary_rules() {
        let text = "a\nĠb\n\n<|endoftext|>\n<|x|>\n";
        let v = ggml_vocab(text.as_bytes(), 5).unwrap();
        assert_eq!(v, [b"a".to_vec(), b" b".to_vec(), Vec::new()]);
        // No trailing newline is fine; a carriage return is part of a token (and invalid).
        assert_eq!(ggml_vocab(b"a\n<|endoftext|>", 2).unwrap(), [b"a".to_vec()]);
        let err = ggml_vocab(b"a\r\n<|endoftext|>\n", 2).unwrap_err();
        assert!(
            matches!(err, VocabError::NotByteLevel { index: 0, .. }),
            "{err}"
        );
        let err = ggml_vocab(text.as_bytes(), 6).unwrap_err();
        assert_eq!(
            err.to_string(),
            "5 tokens but the model's embedding has 6 rows"
        );
        let err = ggml_vocab(b"a\nb\n", 2).unwrap_err();
        assert_eq!(err.to_string(), "no <|endoftext|> token");
        let err = ggml_vocab(b"a\xff\n", 1).unwrap_err();
        assert_eq!(err.to_string(), "not UTF-8 (first bad byte at 1)");
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.bin");
        let err = convert_dir(dir.path(), &out, &|_, _| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("model.bin not found in {}", dir.path().display())
        );
        std::fs::write(dir.path().join("model.bin"), tiny(DType::F16).0.bytes()).unwrap();
        let err = convert_dir(dir.path(), &out, &|_, _| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("vocabulary.txt not found in {}", dir.path().display())
        );
    }

    #[test]
    fn model_errors_name_the_problem() {
        let vocab = vocab_text();

        let (mut b, _) = tiny(DType::F16);
        b.remove("encoder/conv1/weight");
        let msg = convert_err(&b, &vocab);
        assert!(
            msg.ends_with("model.bin: missing variable encoder/conv1/weight"),
            "{msg}"
        );

        let (mut b, _) = tiny(DType::F16);
        b.remove("decoder/layer_0/attention/linear_1/bias");
        let msg = convert_err(&b, &vocab);
        assert!(
            msg.ends_with("missing variable decoder/layer_0/attention/linear_1/bias"),
            "{msg}"
        );

        let (mut b, _) = tiny(DType::F16);
        b.version = 5;
        let msg = convert_err(&b, &vocab);
        assert!(
            msg.ends_with("model.bin: unsupported binary version 5 (only version 6 is supported)"),
            "{msg}"
        );

        let (b, _) = tiny(DType::F16);
        let bytes = b.bytes();
        let dir = write_dir(&b, &vocab);
        std::fs::write(dir.path().join("model.bin"), &bytes[..bytes.len() / 2]).unwrap();
        let err = convert_dir(dir.path(), &dir.path().join("o"), &|_, _| {}).unwrap_err();
        assert!(
            err.to_string().contains("model.bin: truncated at byte "),
            "{err}"
        );

        let (mut b, _) = tiny(DType::F16);
        b.remove("encoder/layer_0/ffn/linear_0/weight");
        b.floats(
            "encoder/layer_0/ffn/linear_0/weight",
            &[3 * D, D],
            DType::F16,
            &[0.0; 48],
        );
        let msg = convert_err(&b, &vocab);
        assert!(
            msg.ends_with(
                "variable encoder/layer_0/ffn/linear_0/weight has shape [12, 4], expected [16, 4]"
            ),
            "{msg}"
        );

        let (mut b, _) = tiny(DType::F16);
        b.remove("decoder/layer_0/ffn/linear_1/weight");
        b.var(
            "decoder/layer_0/ffn/linear_1/weight",
            &[D, 4 * D],
            DType::I8,
            vec![0; 64],
        );
        let msg = convert_err(&b, &vocab);
        assert!(
            msg.contains("decoder/layer_0/ffn/linear_1/weight is int8"),
            "{msg}"
        );

        let (mut b, _) = tiny(DType::F16);
        b.remove("encoder/num_heads");
        b.var(
            "encoder/num_heads",
            &[],
            DType::I16,
            3i16.to_le_bytes().to_vec(),
        );
        let msg = convert_err(&b, &vocab);
        assert!(
            msg.ends_with("encoder/num_heads is 3: must be positive and divide the state size"),
            "{msg}"
        );

        let (mut b, _) = tiny(DType::F16);
        b.spec = "TransformerSpec".into();
        let msg = convert_err(&b, &vocab);
        assert!(
            msg.ends_with("spec is TransformerSpec, not WhisperSpec"),
            "{msg}"
        );

        let msg = convert_err(&tiny(DType::F16).0, "a\nb\n");
        assert!(
            msg.ends_with("vocabulary.txt: 2 tokens but the model's embedding has 8 rows"),
            "{msg}"
        );
    }

    #[test]
    fn a_quantised_file_quantises_what_whisper_cpp_quantize_does() {
        // Its rule: every 2-D tensor but the conv biases and the positional
        // embeddings; the 3-D convolutions stay f16 and 1-D tensors f32.
        for (name, ggml_dims) in whisper_cpp_tensors() {
            let shape: Vec<usize> = ggml_dims.iter().rev().copied().collect();
            let quantised = shape.len() == 2
                && !name.ends_with("positional_embedding")
                && !name.starts_with("encoder.conv");
            for quant in [Quant::Q8_0, Quant::Q5_1] {
                let want = match shape.len() {
                    _ if quantised => quant.matrix_type(),
                    3 => GgmlType::F16,
                    _ => GgmlType::F32,
                };
                assert_eq!(ggml_type(&name, &shape, quant), want, "{name} {quant}");
            }
            let f16_want = if quantised || shape.len() == 3 {
                GgmlType::F16
            } else {
                GgmlType::F32
            };
            assert_eq!(ggml_type(&name, &shape, Quant::F16), f16_want, "{name}");
        }
    }

    #[test]
    fn a_model_whose_rows_are_not_whole_blocks_is_not_quantised_and_leaves_nothing() {
        let (b, _) = tiny(DType::F16);
        let dir = write_dir(&b, &vocab_text());
        let out = dir.path().join("ggml.bin");
        let err = convert_dir_as(dir.path(), &out, Quant::Q8_0, &|_, _| {}).unwrap_err();
        assert!(
            err.to_string().ends_with(&format!(
                "tensor encoder.blocks.0.attn.query.weight: rows of {D} elements do not split into blocks of 32"
            )),
            "{err}"
        );
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn replaces_output_atomically() {
        let (b, _) = tiny(DType::F16);
        let dir = write_dir(&b, &vocab_text());
        let out = dir.path().join("ggml.bin");
        std::fs::write(&out, b"old").unwrap();
        let summary = convert_dir(dir.path(), &out, &|_, _| {}).unwrap();
        assert_eq!(
            std::fs::metadata(&out).unwrap().len(),
            summary.bytes_written
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");

        let err = convert_dir(dir.path(), dir.path(), &|_, _| {}).unwrap_err();
        assert!(err.to_string().starts_with("cannot rename to"), "{err}");
        let err = convert_dir(dir.path(), Path::new("/"), &|_, _| {}).unwrap_err();
        assert_eq!(err.to_string(), "output path / has no file name");
    }

    /// Converts the real model that `VOICEPAY_CT2_DIR` names (tiny.en expected).
    #[test]
    #[ignore = "needs a CTranslate2 tiny.en directory in VOICEPAY_CT2_DIR; \
                `voicepay model install` converts the real model in every test run"]
    fn converts_real_model_when_available() {
        let dir = std::env::var_os("VOICEPAY_CT2_DIR").expect("VOICEPAY_CT2_DIR names a model");
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("ggml-tiny.en.bin");
        let summary = convert_dir(Path::new(&dir), &out, &|_, _| {}).unwrap();
        let h = summary.hparams;
        assert_eq!(
            (
                h.n_vocab,
                h.n_audio_ctx,
                h.n_audio_state,
                h.n_audio_head,
                h.n_audio_layer
            ),
            (51864, 1500, 384, 6, 4)
        );
        assert_eq!(
            (
                h.n_text_ctx,
                h.n_text_state,
                h.n_text_head,
                h.n_text_layer,
                h.n_mels,
                h.ftype
            ),
            (448, 384, 6, 4, 80, 1)
        );
        assert_eq!(summary.n_tensors, 7 + 4 * 15 + 4 + 4 * 24);
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len() as u64, summary.bytes_written);
        let f = testread::parse(&bytes);
        assert_eq!(f.vocab.len(), 50256);
        assert_eq!(f.vocab[220], b" ");
        assert_eq!(
            f.tensor("decoder.token_embedding.weight").dims,
            [384, 51864]
        );
    }
}
