import torch

# Tests use tiny tensors: one thread avoids oversubscribing the 2-core CI machine.
torch.set_num_threads(1)
