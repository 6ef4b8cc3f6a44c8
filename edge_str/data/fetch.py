"""``edge-str data fetch``: download the official archive, or unpack a local copy, and check it.

Speech Commands v0.02 is a tar.gz with the word folders at its top level; the UCI HAR archive is a
zip that (in its current form) holds another zip, ``UCI HAR Dataset.zip``. Downloads go to a
temporary file renamed when complete; archives are unpacked into a staging folder that becomes
``--out`` only once the layout checks out, so a failure leaves nothing half-made behind.
"""

from __future__ import annotations

import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from edge_str.atomic import atomic_path
from edge_str.data.har import find_har_root, split_files
from edge_str.data.speech_commands import COMMAND_WORDS, scan_layout
from edge_str.data.staging import check_free, staged_folder
from edge_str.errors import EdgeStrError

URLS = {
    "google12": "https://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
    "har2": "https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip",
}
ARCHIVE_NAMES = {"google12": "speech_commands_v0.02.tar.gz", "har2": "uci_har_dataset.zip"}
CHUNK = 1 << 20


def fetch(
    task: str, out: str | Path, archive: str | Path | None = None, url: str | None = None
) -> dict:
    """Make ``out`` hold the data set of ``task``; returns where the data is and what it has."""
    if task not in URLS:
        raise EdgeStrError(f"unknown task {task!r} for fetch; expected one of {', '.join(URLS)}")
    target = Path(out).expanduser()
    if target.is_dir() and any(target.iterdir()):
        try:
            return {**_check(task, target), "action": "already present"}
        except EdgeStrError:
            pass  # not a complete tree: check_free below reports the folder
    check_free(target)
    downloaded = None
    if archive is None:
        source = url or URLS[task]
        downloaded = target.parent / ARCHIVE_NAMES[task]
        if not downloaded.is_file():  # a complete earlier download is reused
            download(source, downloaded, task, target)
        archive = downloaded
    archive = Path(archive).expanduser()
    if not archive.is_file():
        raise EdgeStrError(f"{archive}: archive not found")
    with staged_folder(target) as staging:
        if task == "google12":
            extract_tar(archive, staging)
        else:
            extract_zip(archive, staging)
        found = _check(task, staging)  # raises before anything appears at `target`
    data_dir = target / Path(found["data_dir"]).relative_to(staging)
    if downloaded is not None:
        downloaded.unlink()  # unpacked and checked: the archive is no longer needed
    return {**found, "data_dir": str(data_dir), "action": "unpacked"}


def download(url: str, dest: Path, task: str, out: Path) -> None:
    """Stream ``url`` to ``dest`` with a progress bar; ``dest`` appears only when complete."""
    hint = (
        f"; download it by other means and run `edge-str data fetch {task} --out {out} "
        "--archive FILE`"
    )
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(dest) as tmp:
            size = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with (
                open(tmp, "wb") as handle,
                tqdm(
                    total=size,
                    unit="B",
                    unit_scale=True,
                    desc=f"downloading {dest.name}",
                    disable=None,
                ) as bar,
            ):
                while chunk := response.read(CHUNK):
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if size is not None and received != size:
                raise EdgeStrError(f"cannot download {url}: got {received} of {size} bytes{hint}")
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise EdgeStrError(f"cannot download {url}: {reason}{hint}") from None


def extract_tar(archive: Path, into: Path) -> None:
    """Unpack in one pass over the stream (random access into a .gz would re-read it)."""
    try:
        with (
            tarfile.open(archive, "r:*") as tar,
            tqdm(desc=f"unpacking {archive.name}", unit="file", disable=None) as bar,
        ):
            for member in tar:
                _check_member(archive, member.name)
                if not (member.isfile() or member.isdir()):
                    continue  # links and devices have no place in these data sets
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, into, filter="data")
                else:  # Python < 3.10.12: the name was checked by _check_member
                    tar.extract(member, into)
                bar.update()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise EdgeStrError(f"{archive}: cannot unpack this tar.gz archive ({error})") from None


def extract_zip(archive: Path, into: Path, depth: int = 0) -> None:
    """Unpack a zip; a zip inside it (UCI HAR's ``UCI HAR Dataset.zip``) is unpacked in turn."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if not n.startswith("__MACOSX/")]  # macOS junk
            for name in names:
                _check_member(archive, name)
            for name in tqdm(names, desc=f"unpacking {archive.name}", unit="file", disable=None):
                zf.extract(name, into)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise EdgeStrError(f"{archive}: cannot unpack this zip archive ({error})") from None
    if depth == 0:
        for nested in sorted(p for p in into.rglob("*.zip") if p.is_file()):
            extract_zip(nested, nested.parent, depth + 1)
            nested.unlink()


def _check_member(archive: Path, name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise EdgeStrError(f"{archive}: refusing to unpack {name!r} (it points outside the folder)")


def _check(task: str, folder: Path) -> dict:
    """Find the data set inside ``folder`` and check its layout (no decoding or parsing)."""
    if task == "google12":
        root = _speech_root(folder)
        layout = scan_layout(root)
        return {
            "task": task,
            "data_dir": str(root),
            "clips": layout.num_clips,
            "words": len(layout.words),
            "background_recordings": len(layout.background),
            "list_files": layout.has_lists,
        }
    root = find_har_root(folder)
    files = split_files(root, "train") + split_files(root, "test")
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise EdgeStrError(f"{missing[0]}: file not found (part of the UCI HAR Dataset layout)")
    windows = {
        s: sum(1 for line in (root / s / f"y_{s}.txt").open() if line.strip())
        for s in ("train", "test")
    }
    return {"task": task, "data_dir": str(root), "train_windows": windows["train"],
            "test_windows": windows["test"]}  # fmt: skip


def _speech_root(folder: Path) -> Path:
    """``folder`` itself, or its only subfolder when the archive had a top-level folder."""
    if not (folder / COMMAND_WORDS[0]).is_dir():
        subfolders = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if len(subfolders) == 1 and (subfolders[0] / COMMAND_WORDS[0]).is_dir():
            return subfolders[0]
    return folder
