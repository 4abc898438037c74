"""A pair of image models: two Glows (domains A and B) and the prior between their codes.

pix2pix-flow trains two Glows, one per image domain, on paired images. `ImagePair` is that pair
as one object: the two flows and the joint density of their standardized codes,

  eps_A ~ N(0, I),    eps_B | eps_A ~ N(rho * eps_A, diag(1 - rho^2))   (and symmetrically),

the coupled prior (`flows.coupled_prior.CoupledPrior`, docs/coupled_prior.md) of a pair trained
as one density, or rho = 1 (eps_B = eps_A) for a pair trained with the code loss or without a
joint term. Images go in and come out as uint8 `[N, H, W, C]`; TFP's direction convention holds:
`decode` maps codes to images, `encode` images to codes.

Translation A -> B at temperature T, written here once (the trainer's grids, glow-eval, the
SavedModel and the tools all come through `ImagePair.conditional_code`):

  x_B = decode_B(rho * eps_A + T sqrt(1 - rho^2) n),   eps_A = encode_A(x_A),   n ~ N(0, I).

The random numbers are the SavedModel's (`serving/export.py`, `glow_tf2.seeds`): each row has
its own seed (an int `seed` gives row i the seed (seed + i) mod 2^31) and draws its n from the
stateless seed [seed_i, salt], one salt per use (the `SALT_*` constants), so a pair and its
export translate and sample alike for the same row seeds, and a row alike in any batch.

`load_pair(path)` gives the pair of a glow-train run folder (its EMA weights) or of an exported
SavedModel (`SavedPair`, the same methods over the SavedModel's signatures).
"""

from glow_tf2.pair.common import DIRECTIONS
from glow_tf2.pair.common import NO_PRIOR
from glow_tf2.pair.common import SALT_A2B
from glow_tf2.pair.common import SALT_B2A
from glow_tf2.pair.common import SALT_DEQUANTIZE_A
from glow_tf2.pair.common import SALT_DEQUANTIZE_B
from glow_tf2.pair.common import SALT_PAIR_B
from glow_tf2.pair.common import SALT_SAMPLE
from glow_tf2.pair.common import SIDES
from glow_tf2.pair.common import check_pair
from glow_tf2.pair.image_pair import ImagePair
from glow_tf2.pair.loading import from_run
from glow_tf2.pair.loading import load_pair
from glow_tf2.pair.loading import read_run
from glow_tf2.pair.saved_pair import SavedPair

__all__ = [
  "DIRECTIONS",
  "NO_PRIOR",
  "SALT_A2B",
  "SALT_B2A",
  "SALT_DEQUANTIZE_A",
  "SALT_DEQUANTIZE_B",
  "SALT_PAIR_B",
  "SALT_SAMPLE",
  "SIDES",
  "ImagePair",
  "SavedPair",
  "check_pair",
  "from_run",
  "load_pair",
  "read_run",
]
