import time

import streamlit as st

from agecam.core.age_model import ModelError
from agecam.webapp.live import LiveSession, age_histogram, people_markdown, streaming_available
from agecam.webapp.assurance import gate_control
from agecam.webapp.markdown import as_text
from agecam.webapp.resources import NO_MODEL_HELP, cards, ice_servers, model_names, shared_model

st.title("Live camera")
names = model_names()
if not names:
    st.info(NO_MODEL_HELP)
    st.stop()

# The controls in a row above the stream, which gets the page's whole width.
choose, tune, show = st.columns(3)
with choose:
    model_name = st.selectbox("Model", names)
    gate = gate_control(cards().get(model_name, {}))
with tune:
    confidence = st.slider("Detection confidence", 0.1, 0.95, 0.5, 0.05)
    blur_faces = st.checkbox("Blur faces", value=False, help="Hide every face (pixelated beyond recognition); "
                                                              "boxes, ids and ages stay. Searches each frame fully: slower.")
with show:
    show_fps = st.checkbox("Show FPS", value=True)
    show_range = st.checkbox("Show the 80% range", value=False)
video = st.container()

settings = (model_name, confidence, show_fps, show_range, gate, blur_faces)
previous_settings = st.session_state.get("live_settings")
if previous_settings != settings:
    previous = st.session_state.get("live_session")
    # Same model: the running session takes the new settings (no new detector graph per change).
    try:
        reconfigured = (previous is not None and previous_settings[0] == model_name
                        and previous.configure(confidence, show_fps, show_range, gate, blur_faces))
    except ModelError as error:
        st.error(f"The age gate cannot be used: {as_text(error)}")
        st.stop()
    if not reconfigured:
        try:
            model = shared_model(model_name)
            session = LiveSession(model, confidence, show_fps, show_range, gate, blur_faces)
        except ModelError as error:
            st.error(f"The model cannot be used: {as_text(error)}")
            st.stop()
        st.session_state["live_session"] = session
        if previous is not None:
            previous.close()  # its detector's graph and threads go now, not when the browser leaves
    st.session_state["live_settings"] = settings
session: LiveSession = st.session_state["live_session"]

with video:
    if not streaming_available():
        st.warning("The live stream needs the app served by `agecam web`.")
        st.stop()
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    st.caption(f"Model `{model_name}` is loaded. Press START below and allow the camera: the video appears once "
               "the browser has the camera and the stream has connected (a few seconds).")
    context = webrtc_streamer(
        key="agecam-live",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration={"iceServers": ice_servers()},
        media_stream_constraints={"video": True, "audio": False},
        video_frame_callback=session.video_frame_callback,
        async_processing=True,
    )
    status = st.empty()
    panel, histogram = st.columns([3, 2])
    in_view, seen_chart = panel.empty(), histogram.empty()


if not context.state.playing:
    status.caption("Press START and allow camera access. No camera, or access denied? The stream cannot start; "
                   "check the browser's site permissions, or use the Image prediction page.")
while context.state.playing:
    frames, ages, fps = session.snapshot()
    shown = ", ".join(f"#{track} {age}" for track, age in sorted(ages.items())) or "no face in view"
    rate = f" · {fps:.1f} fps" if fps else ""
    status.markdown(f"Frames annotated: **{frames}**{rate} · Ages: **{shown}**")
    current, seen = session.people()
    in_view.markdown(f"**People in view: {len(current)}** · seen since start: {len(seen)}\n\n"
                     + people_markdown(current))
    if seen:
        seen_chart.bar_chart(age_histogram(seen), x_label="age", y_label="people seen")
    time.sleep(0.5)
