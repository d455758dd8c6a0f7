"""Oracles for the tests: the derivation's per-sample loops and central finite differences.

They live in the library (:mod:`xpcnn.doctor.reference`), where ``xpcnn-doctor`` checks a machine
against the same ones; this module keeps the tests' import path.
"""

from xpcnn.doctor.reference import (  # noqa: F401 (re-exported)
    check_layer_gradients, conv_backward, conv_forward, numerical_gradient, strided_conv_backward,
    strided_conv_forward,
)
