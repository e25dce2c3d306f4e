# The image of every Ray pod of the RayService (deploy/60-rayservice.yaml): Ray 2.60.0 on
# Python 3.11 with serve_app installed, so the cluster needs no network access at run time (no
# runtime_env, no pip at start-up). Build it twice from this file, same tag plus a suffix:
#
#   docker build -t $IMAGE:$TAG .                                                  # head, CPU workers
#   docker build --build-arg RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu -t $IMAGE:$TAG-gpu .  # GPU workers
#
# (`make workspace-image` does both.) Why rayproject/ray: Ray's own image is what KubeRay expects
# (user `ray`, uid 1000, `ray` on PATH, the Python that runs Ray), and the head and every worker
# must run the same Ray and Python versions; the `-gpu` variant adds the CUDA runtime for the
# RTX 3090 workers, the plain one keeps the head and CPU workers several GiB smaller. The NVIDIA
# driver and nvidia-smi come from the node (NVIDIA container toolkit), not from the image.
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311
FROM ${RAY_IMAGE}

# git: sessions clone repositories and git.* tools run it. bubblewrap: every tool process runs in
# its own sandbox (docs/SECURITY.md). EXTRA_APT_PACKAGES adds toolchains
# for tools that run in the executor pods (e.g. "golang-go nodejs npm gcc cargo").
ARG EXTRA_APT_PACKAGES=""
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      git ca-certificates bubblewrap ${EXTRA_APT_PACKAGES} \
 && rm -rf /var/lib/apt/lists/*
USER ray

WORKDIR /home/ray/workspace-src
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 serve_app ./serve_app
# The image's Ray must stay the one the RayService names (rayVersion: "2.60.0").
RUN python -m pip install --no-cache-dir . \
 && python -c "import ray, serve_app.app; assert ray.__version__ == '2.60.0', ray.__version__" \
 && cd /home/ray && rm -rf /home/ray/workspace-src
WORKDIR /home/ray
