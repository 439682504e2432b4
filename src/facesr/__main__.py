"""``python -m facesr``: the ``facesr`` command (the app's jobs run ``facesr upscale`` so)."""

from facesr.cli import main

if __name__ == "__main__":
    main()
