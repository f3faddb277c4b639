# edocgw gateway image. Install steps mirror the Makefile's (`pip install` of this project).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    EDOCGW_GATEWAY__DATA_DIR=/var/lib/edocgw \
    EDOCGW_SMTP__RELAY_LISTEN=0.0.0.0:2525 \
    EDOCGW_SMTP__SUBMISSION_LISTEN=0.0.0.0:2587 \
    EDOCGW_ADMIN__LISTEN=0.0.0.0:8025

# OCR of scanned documents (mailparse/ocr.py): Tesseract + Vietnamese model, poppler's pdftoppm.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-vie poppler-utils \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --create-home --home-dir /var/lib/edocgw --shell /usr/sbin/nologin edocgw
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY store ./store
COPY mailparse ./mailparse
COPY signing ./signing
COPY gateway ./gateway
RUN pip install --upgrade pip && pip install . && rm -rf /src

USER edocgw
WORKDIR /var/lib/edocgw
EXPOSE 2525 2587 8025
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8025/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["edocgw"]
CMD ["serve"]
