"""Safe, uniform reading of images and videos: the only place picsift decodes pixels."""

from picsift.media.decode import DecodeOptions, ImageProbe, iter_frames, load_image, probe_image

__all__ = ["DecodeOptions", "ImageProbe", "iter_frames", "load_image", "probe_image"]
