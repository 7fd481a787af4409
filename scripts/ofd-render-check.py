"""Does an independent OFD reader draw our seal where we placed it?

Renders page PAGE of an OFD with easyofd (a reader we did not write: OFD -> PDF -> PNG through
PyMuPDF), crops the box of the StampAnnot of the signature whose Signature.xml is SIGNATURE, and
compares it with IMAGE (the seal's picture): the red pixels of the two must overlap (IoU at least
--min-iou). With --absent the box must instead hold almost no red (the same document before it
was sealed), so that the check is known to fail when the seal is missing.

usage: python ofd-render-check.py DOC.ofd (--signature Doc_0/Signs/Sign_1/Signature.xml | --box "x y w h") --image seal.png
       [--dpi 150] [--min-iou 0.6] [--absent] [--box "x y w h"]
"""
import argparse
import os
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile

import pymupdf
from PIL import Image

NS = {"ofd": "http://www.ofdspec.org/2016"}
# easyofd draws 1 mm of the page as 200/25.4 PDF points.
POINTS_PER_MM = 200 / 25.4


def stamp_box(doc, signature):
    """The Boundary (x, y, w, h in mm) of the signature's first StampAnnot."""
    with zipfile.ZipFile(doc) as z:
        root = ET.fromstring(z.read(signature.lstrip("/")))
    annot = root.find(".//ofd:StampAnnot", NS)
    return [float(v) for v in annot.get("Boundary").split()]


def render(doc, dpi):
    """Page 1 of DOC as an RGB image at DPI, through easyofd."""
    from easyofd.ofd import OFD

    here, work = os.getcwd(), tempfile.mkdtemp(prefix="easyofd-")
    os.chdir(work)  # easyofd unpacks into the current directory
    try:
        reader = OFD()
        reader.read(os.path.abspath(os.path.join(here, doc)), fmt="path")
        pdf = reader.to_pdf()
    finally:
        os.chdir(here)
        shutil.rmtree(work, ignore_errors=True)
    page = pymupdf.open(stream=pdf, filetype="pdf")[0]
    zoom = (dpi / 25.4) / POINTS_PER_MM
    pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False)
    return Image.frombytes("RGB", (pix.width, pix.height), pix.samples)


def red(im):
    px, (w, h) = im.load(), im.size
    return {(x, y) for y in range(h) for x in range(w) if px[x, y][0] > 150 and px[x, y][1] < 110 and px[x, y][2] < 110}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("doc")
    ap.add_argument("--signature", help="the signature's Signature.xml, whose StampAnnot box is checked")
    ap.add_argument("--image", required=True)
    ap.add_argument("--box", help="the box to look at, mm (default: the signature's Boundary)")
    ap.add_argument("--dpi", type=int, default=150)
    ap.add_argument("--min-iou", type=float, default=0.6)
    ap.add_argument("--absent", action="store_true")
    a = ap.parse_args()
    if not a.box and not a.signature:
        ap.error("give --signature or --box")
    x, y, w, h = [float(v) for v in a.box.split()] if a.box else stamp_box(a.doc, a.signature)
    page = render(a.doc, a.dpi)
    mm = a.dpi / 25.4
    crop = page.crop((round(x * mm), round(y * mm), round((x + w) * mm), round((y + h) * mm)))
    seal = Image.open(a.image).convert("RGBA")
    flat = Image.new("RGBA", seal.size, "white")
    flat.alpha_composite(seal)
    ref = flat.convert("RGB").resize(crop.size)
    seen, want = red(crop), red(ref)
    iou = len(seen & want) / max(1, len(seen | want))
    share = len(seen) / max(1, crop.size[0] * crop.size[1])
    print(f"box {x} {y} {w} {h} mm at {a.dpi} dpi: {crop.size} px, red {len(seen)} px (image {len(want)}), IoU {iou:.2f}")
    if a.absent:
        ok = share < 0.01
        print("no seal in the box" if ok else "UNEXPECTED: red in the box")
    else:
        ok = iou >= a.min_iou
        print("the seal is drawn where it was placed" if ok else "NOT drawn where it was placed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
