"""espeak-ng speech for the demo data: libespeak-ng of the espeakng-loader wheel, or the program.

The PyPI wheel ``espeakng-loader`` ships ``libespeak-ng`` and its voice data, so ``pip install``
alone is enough; the binding below drives it through ctypes (synchronous mode: the samples come
back through a callback in the calling thread). The ``espeak-ng`` program (Debian, Homebrew) is
the fallback. Both give int16 samples at espeak-ng's own rate (22,050 Hz); callers resample.
Every failure is one ``EdgeStrError`` line saying what is missing.
"""

from __future__ import annotations

import _ctypes
import ctypes
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from edge_str.errors import EdgeStrError

INSTALL_HINT = (
    "install the Python package with `pip install espeakng-loader` (it ships libespeak-ng and "
    "its voices), or the espeak-ng program (`apt-get install espeak-ng`, `brew install espeak-ng`)"
)

# espeak_lib.h (espeak-ng 1.5x): the values of the enums and flags used here.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit()
_PARAM_RATE, _PARAM_PITCH = 1, 3
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0


class Speech(Protocol):
    name: str  # what speaks, for summaries

    def speak(self, text: str, voice: str, speed: int, pitch: int) -> tuple[np.ndarray, int]:
        """(int16 samples, sample rate) of ``text`` in ``voice`` at ``speed`` wpm, ``pitch``."""
        ...


class _Voice(ctypes.Structure):  # espeak_VOICE
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class LibrarySpeech:
    """libespeak-ng from the espeakng-loader wheel, through ctypes.

    libespeak-ng keeps state between utterances (static counters in its wave generator, libc's
    rand()), and espeak_Initialize seeds its own noise generator (espeak_rand, which the whisper
    voices draw from) with time(NULL), so the same call would not give the same samples twice.
    Each utterance therefore loads a private copy of the library afresh (dlopen of a file no one
    else opens, ~5 ms), with rand() and espeak_rand seeded the same each time: the samples depend
    on the arguments only. The library is global state, so calls are serialised.
    """

    name = "libespeak-ng (espeakng-loader)"
    _instance: LibrarySpeech | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise EdgeStrError("the Python package espeakng-loader is not installed") from None
        library = Path(espeakng_loader.get_library_path())
        try:
            self._data = espeakng_loader.get_data_path().encode()
        except RuntimeError:
            raise EdgeStrError("espeakng-loader is installed without its voice data") from None
        if not library.is_file():
            raise EdgeStrError(f"{library}: espeakng-loader is installed without libespeak-ng")
        self._scratch = tempfile.TemporaryDirectory(prefix="edge_str-espeak-")
        self._copy = Path(self._scratch.name) / library.name
        shutil.copyfile(library, self._copy)
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._collect)  # kept: the library holds it
        with self._lock, self._loaded():  # fail now, not at the first word
            self.rate = self._rate

    @classmethod
    def shared(cls) -> LibrarySpeech:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @contextmanager
    def _loaded(self) -> Iterator[ctypes.CDLL]:
        """A fresh, initialised instance of the library; unloaded again on exit."""
        try:
            lib = ctypes.CDLL(str(self._copy), mode=os.RTLD_LOCAL)
        except OSError as error:
            raise EdgeStrError(f"cannot load libespeak-ng of espeakng-loader ({error})") from None
        try:
            lib.espeak_Initialize.argtypes = [
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_int,
            ]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_Synth.argtypes = [
                ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
            ]  # fmt: skip
            rate = lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, 0, self._data, _INITIALIZE_DONT_EXIT
            )
            if rate <= 0:
                raise EdgeStrError("libespeak-ng of espeakng-loader failed to start (voice data?)")
            self._rate = int(rate)
            lib.espeak_SetSynthCallback(self._callback)
            yield lib
            lib.espeak_Terminate()
        finally:
            _dlclose(lib._handle)

    def _collect(self, wav, count: int, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0: go on synthesising

    @staticmethod
    def _set_voice(lib: ctypes.CDLL, voice: str) -> None:
        # As the espeak-ng program does: the voice by name, else by language ("en-gb").
        if lib.espeak_SetVoiceByName(voice.encode()) == _EE_OK:
            return
        wanted = _Voice(languages=voice.encode())
        if lib.espeak_SetVoiceByProperties(ctypes.byref(wanted)) != _EE_OK:
            raise EdgeStrError(f"espeak-ng has no voice {voice!r}")

    def speak(self, text: str, voice: str, speed: int, pitch: int) -> tuple[np.ndarray, int]:
        data = text.encode() + b"\0"
        with self._lock, self._loaded() as lib:
            self._set_voice(lib, voice)
            lib.espeak_SetParameter(_PARAM_RATE, int(speed), 0)
            lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            self._chunks = []
            _reseed_libc()
            _reseed_espeak(lib)
            status = lib.espeak_Synth(
                data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            chunks, self._chunks = self._chunks, []
        if status != _EE_OK:
            raise EdgeStrError(f"libespeak-ng failed for {text!r} with voice {voice} ({status})")
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return samples, self.rate


def _reseed_libc() -> None:
    """rand() as a new process starts it (seed 1): breathy and klatt voices draw noise from it."""
    srand = getattr(_LIBC, "srand", None)
    if srand is not None:
        srand(1)


_LIBC = ctypes.CDLL(None) if os.name == "posix" else None

# espeak_ng_SetRandSeed's seed: any fixed value (1, as for rand()).
ESPEAK_NOISE_SEED = 1


def _reseed_espeak(lib: ctypes.CDLL) -> None:
    """espeak_rand seeded with a constant, not with the clock as espeak_Initialize seeds it."""
    seed = getattr(lib, "espeak_ng_SetRandSeed", None)  # espeak-ng >= 1.51
    if seed is not None:
        seed.argtypes = [ctypes.c_long]
        seed(ESPEAK_NOISE_SEED)


def _dlclose(handle: int) -> None:
    close = getattr(_ctypes, "dlclose", None)  # POSIX; elsewhere the copy stays loaded
    if close is not None:
        close(handle)


class ProgramSpeech:
    """The espeak-ng program: one process per utterance, WAV through a temporary file.

    The program seeds its noise from the clock and has no option to fix it, so clips in whisper
    voices differ from run to run on this path (the library path above is byte-reproducible).
    """

    def __init__(self, program: str) -> None:
        self.program = program
        self.name = f"the espeak-ng program ({program})"

    def speak(self, text: str, voice: str, speed: int, pitch: int) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory(prefix="edge_str-espeak-") as scratch:
            out = Path(scratch) / "speech.wav"
            command = [
                self.program,
                "-w",
                str(out),
                "-v",
                voice,
                "-s",
                str(speed),
                "-p",
                str(pitch),
            ]
            result = subprocess.run([*command, text], capture_output=True, text=True)
            if result.returncode != 0 or not out.is_file():
                why = " ".join(result.stderr.split()) or f"exit code {result.returncode}"
                raise EdgeStrError(f"espeak-ng failed for {text!r} with voice {voice}: {why}")
            samples, rate = sf.read(str(out), dtype="int16")
        return samples, int(rate)


def open_speech() -> Speech:
    """The wheel's library when it loads, else the espeak-ng program; else one clear error."""
    try:
        return LibrarySpeech.shared()
    except EdgeStrError as error:
        library_problem = str(error)
    program = shutil.which("espeak-ng")
    if program:
        return ProgramSpeech(program)
    raise EdgeStrError(
        f"espeak-ng is missing ({library_problem}, and no espeak-ng program is on PATH); "
        f"`edge-str data synth google12` speaks the words with it: {INSTALL_HINT}"
    )
