"""Video files in, frame triplets out (``data.layout: video``): held frames merged into drawings, scene cuts found,
triplets of three consecutive drawings of one scene written in the triplet layout the rest of the DAG reads.

Animation is drawn on twos and threes: a drawing is held for several frames, so consecutive frames repeat. A frame is
a new drawing when it differs from the first frame of the current drawing (not from the frame before, so a slow pan
that changes a little each frame still starts new drawings) in more than ``held.threshold`` of the pixels of the
analysis thumbnail, a pixel counting as changed when its grey level moves by more than ``held.noise`` (which the
codec's noise on a held drawing does not). A triplet is three consecutive drawings of one scene; its frames are the
first frame of each drawing, at the times they appear, and t = (time2 - time1) / (time3 - time1) is the true place
of the middle drawing (0.5 only on even timing). Scene cuts come from PySceneDetect; no triplet spans one.

Decoding: PyAV, one pass, in presentation order, frame-accurate (every decoded frame is counted; nothing is
seeked). Times are the stream's timestamps (variable frame rate included), in seconds. The stream's display matrix
is applied, its rotation and its flips, as FFmpeg's player applies them (``video.display``). Every pixel
format is converted to 8-bit RGB by FFmpeg's swscale: 10- and 12-bit sources are rounded to 8 bits, an alpha channel
is dropped (the colour channels as stored, not composited), a palette (GIF) is expanded.

One extraction job per video writes ``results/videos/<split>/<video>/`` (``extract_video``): its triplet folders, its
``manifest.csv`` and ``video.json``, described in docs/outputs.md.

Modules: ``files`` (where videos are, their splits, reading an extraction; what the Snakefile needs) and ``extract``
(rule extract_video). Their public names are available from this package.
"""

from latent_interp.video.files import (CLIP, CLIP_MANIFEST, CLIP_RECORD, COMPARE, DEFAULTS, DETECTORS,
                                       DRAWING_COLUMNS, DRAWINGS, DROP_REASONS, INFO, MANIFEST, MANIFEST_COLUMNS,
                                       TRIPLETS, VIDEO_EXTENSIONS, extraction_dir, is_video_file, read_drawings,
                                       read_extractions, read_manifest, read_record, settings_of, split_of,
                                       split_videos, summary, video_folder, videos_in)
from latent_interp.video.extract import VideoFault, extract_video, frames_at

__all__ = ["CLIP", "CLIP_MANIFEST", "CLIP_RECORD", "COMPARE", "DEFAULTS", "DETECTORS", "DRAWING_COLUMNS",
           "DRAWINGS", "DROP_REASONS", "INFO", "MANIFEST", "MANIFEST_COLUMNS", "TRIPLETS", "VIDEO_EXTENSIONS",
           "extraction_dir", "is_video_file", "read_drawings", "read_extractions", "read_manifest", "read_record",
           "settings_of", "split_of", "split_videos", "summary", "video_folder", "videos_in", "VideoFault",
           "extract_video", "frames_at"]
