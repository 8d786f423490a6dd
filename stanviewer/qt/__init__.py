"""The desktop app: a thin Qt layer over :mod:`stanviewer.core` (the core never imports this package).

Start it with :func:`stanviewer.qt.app.run_app` (``stanviewer VIDEO``). Modules:

- ``session``: the document model (video, analysis, threshold, current frame); every view subscribes to it;
- ``workers``: a QThread that runs core jobs (generators) and a latest-request-wins frame grabber;
- ``video_view``, ``transport``, ``timeline``, ``segments_panel``, ``analysis_panel``: the views;
- ``main_window``, ``app``, ``settings``, ``dialogs``: assembly, settings and the About/shortcut boxes.
"""
