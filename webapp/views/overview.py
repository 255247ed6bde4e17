import streamlit as st

from agecam.webapp.resources import NO_MODEL_HELP, cards, model_names

st.title("agecam")
st.markdown(
    """
agecam estimates the apparent age of every face it sees: it finds faces with MediaPipe,
follows each with a stable track id, and estimates an age with a model trained on UTKFace.

**In this app**
- **Live camera**: your browser's camera goes to this server, every frame is annotated
  (box, `#id · age`), and the annotated stream comes back. Press START and allow the camera.
  Each age comes with a calibrated 80% range (shown on the image page and in the CLI's outputs).
- **Image prediction**: upload a photo (JPEG, PNG or WebP) or pick a face from the dataset.
- **Model performance**: test-set MAE, MSE and RMSE of each shipped model, by age band and by
  face size (small, compressed faces as a camera sees them) too.
- **Training insights**: loss curves, predicted-vs-actual plots and each model's training set-up.

**On the command line**
```bash
agecam webcam                       # live, in an OpenCV window
agecam video clip.mp4 -o out.mp4    # annotate a video (file, camera index or URL)
agecam image photo.jpg --json       # ages of the faces in still images
agecam web --port 8765              # this app
```
Nothing you show it is stored: frames are processed in memory and never written to disk.
"""
)
names = model_names()
if names:
    card = cards().get(names[0], {})
    test = card.get("metrics", {}).get("test", {})
    if test:
        coverage = card.get("age_range", {}).get("test", {}).get("coverage")
        st.caption(f"Default model: `{names[0]}`, test MAE {test['mae']:.2f} years on {test['n']} held-out faces"
                   + (f"; its 80% age ranges held the true age for {coverage:.0%} of them." if coverage else "."))
else:
    st.info(NO_MODEL_HELP)
