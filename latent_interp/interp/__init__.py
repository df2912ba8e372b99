"""Frame 2 from frames 1 and 3: the interpolation methods, their scores per triplet, and the summary.

Methods (``METHODS``, in table order; each one registered ``Method``: what it reads, whether it sees frame 2, whether it
is learned, so that adding one touches no scoring loop):
    ``repeat``        frame 1 itself (its latent: latent1)
    ``pixel_blend``   (1 - t) frame 1 + t frame 3 in pixel space, rounded to uint8 (no VAE, no latent)
    ``pixel_flow``    frames 1 and 3 warped to time t along the estimated flow and blended (``latent_interp.warp``:
                      Super SloMo's intermediate flows, occlusion-aware weights, the blend kept where nothing moves)
    ``latent_lerp``   decode of (1 - t) latent1 + t latent3, latents being posterior means
    ``latent_slerp``  decode of the spherical interpolation at t over the flattened latent (``slerp``)
    ``linear``, ``mlp``, ``unet``   decode of a learned predictor's latent2 (``latent_interp.predictors``)
    ``latent_flow``   decode of latent1 and latent3 warped like ``pixel_flow``, with the flows averaged over each
                      latent cell and divided by the VAE's downsampling
    ``flow_unet``     decode of a learned correction of ``latent_flow`` (``latent_interp.predictors``)
    ``recon_flow``    ``pixel_flow`` applied to the VAE's reconstructions of frames 1 and 3: against ``latent_flow``,
                      what warping inside the latent grid costs beyond what the decoder loses anyway
    ``decoder_flow@k``  latent1 and latent3 decoded to the decoder's level k, both feature maps warped like
                      ``pixel_flow`` on that level's grid, blended and decoded the rest of the way
                      (``latent_interp.interp.depth``): between ``latent_flow`` and ``recon_flow``, where inside the
                      decoder motion becomes movable
    ``pixel_flow_oracle``, ``latent_flow_oracle``, ``decoder_flow_oracle@k``   the same warps along the ORACLE
                      flows 2->1 and 2->3, estimated from frame 2 itself: the bound perfect motion gives in each
                      space, not in-between methods
    ``vae_ceiling``   the reconstruction of frame 2 (the recon store): what decoding the true latent2 gives, so no
                      latent method can beat it
Methods that see frame 2 (``Method.sees_frame2``: the oracles and the ceiling) are never a "best method". A triplet
whose flow failed (the flow table's ``status``) has empty scores for the methods that read flow.
Scores are against the true frame 2, in each protocol of ``metrics.protocol`` (``PROTOCOL_COLUMNS``):
    ``standard``     ``latent_mse`` (mean squared difference from the encoded latent2, unscaled latent units; empty for
                     the pixel-space methods), ``mse``, ``psnr``, ``ssim`` (the metric tables' definitions,
                     ``metrics.image_metrics``) and ``lpips`` (inputs in [-1, 1]); inside the motion RoI on annotated
                     splits ``roi_mse``, ``roi_psnr``, ``roi_ssim`` (``metrics.roi_box``)
    ``animeinterp``  ``animeinterp_psnr``, ``animeinterp_ssim`` as AnimeInterp's test script computes them (SSIM's data
                     range 2, ``metrics.ANIMEINTERP_SPEC``); annotated splits add ``animeinterp_roi_psnr``,
                     ``animeinterp_roi_ssim`` in the script's RoI (``metrics.animeinterp_roi_box``)
    ``eisai``        ``eisai_lpips`` (AlexNet, [0, 1] inputs as EISAI feeds them) and ``eisai_chamfer`` (its chamfer
                     line distance, ``latent_interp.perceptual``)
LPIPS columns are empty when no LPIPS backbone is configured (``interp.lpips.backbone``).

The table, spec and store of rule interp and the summary's columns are described in docs/outputs.md.

Modules: ``methods`` (the registry and the score columns), ``depth`` (the warps inside the decoder), ``scoring``
(rule interp), ``summary`` (rule interp_summary). Their public names are available from this package.
"""

from latent_interp.interp.depth import MAX_LEVELS, DecoderWarps
from latent_interp.interp.methods import (HIGHER_IS_BETTER, KEY_COLUMNS, LATENT_METHODS, LPIPS_INPUTS, METHODS,
                                          PARALLEL_TOLERANCE, PROTOCOL_COLUMNS, PROTOCOL_ROI_COLUMNS, REGISTRY,
                                          SEES_FRAME2, SUMMARY_METRICS, Chunk, Method, active_methods, decoder_level,
                                          lerp, pixel_blend, slerp, table_columns)
from latent_interp.interp.scoring import (GalleryKeeper, InterpInputs, InterpOutputs, Scorer, _predict_chunk,
                                          gallery_order, interp_spec, score_split)
from latent_interp.interp.summary import SUMMARY_KEYS, motion_bins, summarize_interp

__all__ = ["MAX_LEVELS", "DecoderWarps", "decoder_level", "HIGHER_IS_BETTER", "KEY_COLUMNS", "LATENT_METHODS",
           "LPIPS_INPUTS", "METHODS", "PARALLEL_TOLERANCE", "PROTOCOL_COLUMNS", "PROTOCOL_ROI_COLUMNS", "REGISTRY",
           "SEES_FRAME2", "SUMMARY_METRICS", "Chunk", "Method", "active_methods", "lerp", "pixel_blend",
           "slerp", "table_columns", "GalleryKeeper",
           "InterpInputs", "InterpOutputs", "Scorer", "_predict_chunk", "gallery_order", "interp_spec", "score_split",
           "SUMMARY_KEYS", "motion_bins", "summarize_interp"]
