import torch

from edge_str import FastGRNN, FastGRNNCell, FastGRNNClassifier, bake_str


def _paper_step(x, h, W, U, bz, bh, zeta, nu):
    """FastGRNN eqs. written out elementwise-by-row, independent of the package code."""
    out = torch.empty_like(h)
    for b in range(x.shape[0]):
        a = W @ x[b] + U @ h[b]
        z = 1 / (1 + torch.exp(-(a + bz)))
        h_tilde = torch.tanh(a + bh)
        coeff = 1 / (1 + torch.exp(-zeta)) * (1 - z) + 1 / (1 + torch.exp(-nu))
        out[b] = z * h[b] + coeff * h_tilde
    return out


def test_dense_cell_matches_hand_written_step():
    torch.manual_seed(0)
    cell = FastGRNNCell(6, 5, w_mode="dense", u_mode="dense")
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn_like(p))
    x, h = torch.randn(3, 6), torch.randn(3, 5)
    expected = _paper_step(
        x, h, cell.W.weight, cell.U.weight, cell.bias_gate, cell.bias_update, cell.zeta, cell.nu
    )
    assert torch.allclose(cell(x, h), expected, atol=1e-6)


def test_initial_scalars_are_the_papers():
    cell = FastGRNNCell(3, 4)
    assert cell.zeta.item() == 1.0 and cell.nu.item() == -4.0


def test_low_rank_cell_equals_dense_cell_with_the_same_matrices():
    torch.manual_seed(1)
    dense = FastGRNNCell(6, 5, w_mode="dense", u_mode="dense")
    low = FastGRNNCell(6, 5, w_mode="str", u_mode="str", s_init=-30.0)
    with torch.no_grad():
        for name in ("W", "U"):
            matrix = getattr(low, name)
            u, s, vh = torch.linalg.svd(getattr(dense, name).weight, full_matrices=False)
            matrix.w1.copy_(u)
            matrix.parametrizations.sigma.original.copy_(s)
            matrix.w2.copy_(vh)
        for name in ("bias_gate", "bias_update", "zeta", "nu"):
            getattr(low, name).copy_(getattr(dense, name))
    x, h = torch.randn(4, 6), torch.randn(4, 5)
    assert torch.allclose(low(x, h), dense(x, h), atol=1e-5)


def test_sequence_model_equals_stepping_the_cell():
    torch.manual_seed(2)
    rnn = FastGRNN(4, 7, w_mode="fixed", u_mode="str", rank_w=2)
    x = torch.randn(3, 11, 4)
    h = torch.zeros(3, 7)
    for t in range(11):
        h = rnn.cell(x[:, t], h)
    assert torch.allclose(rnn(x), h, atol=1e-6)


def test_classifier_costs_before_and_after_compaction():
    torch.manual_seed(3)
    model = FastGRNNClassifier(32, 100, 12, s_init=-30.0)
    cost = model.cost()
    # as trained: full-rank factors of W (100x32, r=32) and U (100x100, r=100) + their s
    assert cost.params_trained == (100 * 32 + 32 + 32 * 32 + 1) + (
        100 * 100 + 100 + 100 * 100 + 1
    ) + (2 * 100 + 2) + (12 * 100 + 12)
    # compaction of full-rank factors stores the dense products
    assert cost.params_compact == 100 * 32 + 100 * 100 + 202 + 1212
    assert cost.macs_per_step_compact == 100 * 32 + 100 * 100 + 3 * 100
    with torch.no_grad():  # U keeps 10 ranks, W keeps 4
        for matrix, k in ((model.rnn.cell.U, 10), (model.rnn.cell.W, 4)):
            sigma = matrix.parametrizations.sigma.original
            matrix.parametrizations.sigma[0].s.fill_(
                float(torch.log((sigma[k - 1] + sigma[k]) / 2))
            )
    assert model.effective_ranks() == {"W": 4, "U": 10}
    assert model.full_ranks() == {"W": 32, "U": 100}
    cost = model.cost()
    assert cost.params_compact == 4 * 132 + 10 * 200 + 202 + 1212
    assert cost.macs_per_step_compact == 4 * 132 + 10 * 200 + 300
    assert cost.head_macs == 1200


def test_normalizer_and_bake_keep_logits():
    torch.manual_seed(4)
    model = FastGRNNClassifier(5, 8, 3, s_init=-2.0)
    model.normalizer.set_statistics(torch.arange(5.0), torch.full((5,), 2.0))
    x = torch.randn(2, 9, 5) * 2 + torch.arange(5.0)
    before = model(x).detach()
    ranks = model.effective_ranks()
    bake_str(model)
    assert torch.allclose(model(x), before, atol=1e-6)
    assert int((model.rnn.cell.U.sigma != 0).sum()) == ranks["U"]
