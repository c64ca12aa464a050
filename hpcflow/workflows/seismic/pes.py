"""The seismic workflow's nine PEs, a chain of stateless steps over one station's record:

    ReadTraces -> Decimate -> Detrend -> Demean -> RemoveResponse -> Bandpass
               -> Normalise -> Spectrum -> WriteSpectrum

A record is `{station, fs, sensitivity, data}`; each step replaces `data` (and `fs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...pe import IterativePE, ProducerPE
from . import science
from .sources import ObspyRecords, SyntheticNetwork

Record = dict[str, Any]

SPECTRA_DIR = "spectra"


class ReadTraces(ProducerPE):
    """Emits one station's record per call, so a parallel mapping can start processing the
    first stations while the rest are read, and each queued item is one station's hour."""

    def __init__(self, source: SyntheticNetwork | ObspyRecords):
        super().__init__()
        self.source = source
        self.calls = 0

    def _process(self, inputs: dict[str, Any]) -> Record:
        i = self.calls
        self.calls += 1
        return self.source.record(i)


class Decimate(IterativePE):
    def __init__(self, target_sps: float = science.TARGET_SPS):
        super().__init__()
        self.target_sps = target_sps

    def _process(self, rec: Record) -> Record:
        factor = science.decimation_factor(rec["fs"], self.target_sps)
        return {**rec, "fs": rec["fs"] / factor, "data": science.decimate(rec["data"], factor)}


class Detrend(IterativePE):
    def _process(self, rec: Record) -> Record:
        return {**rec, "data": science.detrend_simple(rec["data"])}


class Demean(IterativePE):
    def _process(self, rec: Record) -> Record:
        return {**rec, "data": science.demean(rec["data"])}


class RemoveResponse(IterativePE):
    def _process(self, rec: Record) -> Record:
        return {**rec, "data": science.remove_flat_response(rec["data"], rec["fs"], rec["sensitivity"])}


class Bandpass(IterativePE):
    def _process(self, rec: Record) -> Record:
        return {**rec, "data": science.bandpass(rec["data"], rec["fs"])}


class Normalise(IterativePE):
    def _process(self, rec: Record) -> Record:
        return {**rec, "data": science.envelope_normalise(rec["data"])}


class Spectrum(IterativePE):
    def _process(self, rec: Record) -> Record:
        return {**rec, "data": science.spectrum(rec["data"])}


class WriteSpectrum(IterativePE):
    """Saves the spectrum as `spectra/<station>.npy` under `out_dir` and emits where it went
    (relative to `out_dir`, so results compare across run directories)."""

    def __init__(self, out_dir: str):
        super().__init__()
        self.out_dir = out_dir

    def _process(self, rec: Record) -> dict[str, Any]:
        relative = Path(SPECTRA_DIR) / f"{rec['station']}.npy"
        path = Path(self.out_dir) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, rec["data"])
        return {"station": rec["station"], "file": relative.as_posix(), "fs": rec["fs"], "bins": len(rec["data"])}
