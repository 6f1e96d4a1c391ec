// Read our SEG and TID 1500 SR objects the way OHIF 3.13.2 does, in Node.
//
//   node check_dcmjs.mjs [--strict] [--dump DIR] --sources SRC_DIR [--sources DIR2] OBJECT.dcm ... > report.json
//
// Run with NODE_PATH-free module resolution from the folder where
// scripts/viewers/package.json was installed (scripts/viewers/check does that:
// var/viewers/node).
//
// SEG: the real loader OHIF calls (@cornerstonejs/adapters 5.6.8,
// adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer, parsed with dcmjs
// 0.52.0, the versions @ohif/app 3.13.2 pins), fed with a cornerstone metadata provider
// built from the source images. It is run on two lists of referenced image ids:
//   * "series": what OHIF 3.13.2 passes: every image of the referenced display set. Its
//     default SOP class handler puts all single-frame images of a series into one
//     display set, sorted by InstanceNumber when the series is not one volume, by
//     position otherwise;
//   * "stack": only the images the SEG references, in the SEG's frame order (what a
//     viewer that splits a series by orientation would pass).
// Segment colours are converted from CIELab as OHIF's dicomlabToRGB does
// (dcmjs.data.Colors.dicomlab2RGB, x 255, rounded).
//
// SR: OHIF's cornerstone-dicom-sr SOP class handler rules, re-implemented here (its
// module cannot be imported outside the web bundle): TID 1500 root, Imaging
// Measurements container, measurement groups merged by Tracking Unique Identifier, a
// group with a SCOORD is drawn on the image its SCOORD references, NUM items become
// labels ("concept: value unit"); a NUM whose ContentSequence holds no SCOORD is
// dropped by OHIF with a console warning, and so is reported here.
//
// Output: one JSON report on stdout. Exit status 1 when something a viewer would choke
// on is found in what must work (a frame or SCOORD that references no source image, a
// SEG frame whose plane position is not its source image's, an unparsable object, a
// SEG that does not load on its own stack, a SR group OHIF cannot process); OHIF's
// known limitations (multi-orientation series, fractional SEG) are reported under
// "ohifSeries" / "limitations" and fail the run only with --strict.

import fs from 'node:fs';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { metaData, cache } from '@cornerstonejs/core';
import { adaptersSEG } from '@cornerstonejs/adapters';

const { DicomMessage, DicomMetaDictionary } = dcmjs.data;
const SEG_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';
const SR_SOP_CLASSES = new Set([
  '1.2.840.10008.5.1.4.1.1.88.22', // Enhanced SR
  '1.2.840.10008.5.1.4.1.1.88.33', // Comprehensive SR
  '1.2.840.10008.5.1.4.1.1.88.34', // Comprehensive 3D SR
]);
const TOL_MM = 1e-3;

const errors = [];
const limitations = [];
const fail = msg => errors.push(msg);

function parseArgs(argv) {
  const sources = [];
  const objects = [];
  let strict = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--strict') {
      strict = true;
    } else if (argv[i] === '--dump') {
      dumpDir = argv[++i];
    } else if (argv[i] === '--sources') {
      sources.push(argv[++i]);
    } else {
      objects.push(argv[i]);
    }
  }
  if (!sources.length || !objects.length) {
    console.error('usage: node check_dcmjs.mjs --sources DIR [--sources DIR] OBJECT.dcm ...');
    process.exit(2);
  }
  return { sources, objects, strict };
}

function walk(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(p));
    else if (entry.isFile()) out.push(p);
  }
  return out.sort();
}

function readDataset(file) {
  const buf = fs.readFileSync(file);
  const arrayBuffer = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const dicomData = DicomMessage.readFile(arrayBuffer, { untilTag: undefined });
  const ds = DicomMetaDictionary.naturalizeDataset(dicomData.dict);
  ds._meta = DicomMetaDictionary.namifyDataset(dicomData.meta);
  return { ds, arrayBuffer };
}

const asArray = v => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
const first = v => asArray(v)[0];
const num = v => asArray(v).map(Number);
const close = (a, b, tol) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) <= tol);
const cross = (a, b) => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];
const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

// ---------------------------------------------------------------- sources + metadata
const images = new Map(); // imageId -> naturalized dataset
const bySop = new Map(); // SOPInstanceUID -> imageId

function loadSources(dirs) {
  for (const dir of dirs) {
    for (const file of walk(dir)) {
      let ds;
      try {
        ({ ds } = readDataset(file));
      } catch (e) {
        continue; // not DICOM (ground truth json, labels)
      }
      if (!ds.SOPInstanceUID || !ds.Rows || ds.Modality === 'SEG' || ds.Modality === 'SR') continue;
      if (Number(ds.NumberOfFrames || 1) > 1) {
        fail(`${file}: multi-frame source images are not modelled by this check`);
        continue;
      }
      const imageId = `dicomfile:${path.resolve(file)}`;
      images.set(imageId, ds);
      bySop.set(ds.SOPInstanceUID, imageId);
    }
  }
}

function provider(type, imageId) {
  const ds = images.get(imageId);
  if (!ds) return undefined;
  const iop = num(ds.ImageOrientationPatient);
  const spacing = num(ds.PixelSpacing);
  switch (type) {
    case 'instance':
      return ds;
    case 'generalImageModule':
      return { sopInstanceUID: ds.SOPInstanceUID, instanceNumber: Number(ds.InstanceNumber) };
    case 'generalSeriesModule':
      return {
        seriesInstanceUID: ds.SeriesInstanceUID,
        studyInstanceUID: ds.StudyInstanceUID,
        modality: ds.Modality,
      };
    case 'imagePlaneModule':
      return {
        frameOfReferenceUID: ds.FrameOfReferenceUID,
        rows: ds.Rows,
        columns: ds.Columns,
        imageOrientationPatient: iop,
        rowCosines: iop.slice(0, 3),
        columnCosines: iop.slice(3, 6),
        imagePositionPatient: num(ds.ImagePositionPatient),
        pixelSpacing: spacing,
        rowPixelSpacing: spacing[0],
        columnPixelSpacing: spacing[1],
        sliceThickness: Number(ds.SliceThickness),
      };
    case 'imagePixelModule':
      return {
        samplesPerPixel: ds.SamplesPerPixel,
        photometricInterpretation: ds.PhotometricInterpretation,
        rows: ds.Rows,
        columns: ds.Columns,
        bitsAllocated: ds.BitsAllocated,
        bitsStored: ds.BitsStored,
        highBit: ds.HighBit,
        pixelRepresentation: ds.PixelRepresentation,
      };
    default:
      return undefined;
  }
}

// OHIF 3.13.2 default SOP class handler: one display set for all single-frame images of
// a series; ImageSet.sort: by position along the first image's normal when the set is
// reconstructable, else by InstanceNumber.
function ohifSeriesImageIds(seriesUID) {
  const ids = [...images.entries()].filter(([, ds]) => ds.SeriesInstanceUID === seriesUID);
  const iops = ids.map(([, ds]) => num(ds.ImageOrientationPatient));
  const oneOrientation = iops.every(iop => close(iop, iops[0], 1e-3));
  if (oneOrientation) {
    const normal = cross(iops[0].slice(0, 3), iops[0].slice(3, 6));
    const ref = num(ids[0][1].ImagePositionPatient);
    const dist = ds => dot(normal, num(ds.ImagePositionPatient).map((x, i) => x - ref[i]));
    ids.sort((a, b) => dist(b[1]) - dist(a[1]));
  } else {
    ids.sort((a, b) => Number(a[1].InstanceNumber) - Number(b[1].InstanceNumber));
  }
  return { imageIds: ids.map(([id]) => id), oneOrientation };
}

// ---------------------------------------------------------------- SEG
function dicomlabToRGB(lab) {
  return dcmjs.data.Colors.dicomlab2RGB(lab).map(x => Math.round(x * 255));
}

function code(seq) {
  const c = first(seq);
  return c ? `${c.CodingSchemeDesignator}:${c.CodeValue} ${c.CodeMeaning}` : null;
}

function segFrames(seg) {
  const shared = first(seg.SharedFunctionalGroupsSequence) || {};
  const sharedIop = first(shared.PlaneOrientationSequence)?.ImageOrientationPatient;
  // highdicom moves Segment Identification to the shared groups when there is one segment
  const sharedSegNo = first(shared.SegmentIdentificationSequence)?.ReferencedSegmentNumber;
  return asArray(seg.PerFrameFunctionalGroupsSequence).map((fg, i) => {
    const src = first(first(fg.DerivationImageSequence)?.SourceImageSequence);
    const segNo = first(fg.SegmentIdentificationSequence)?.ReferencedSegmentNumber ?? sharedSegNo;
    const ipp = first(fg.PlanePositionSequence)?.ImagePositionPatient;
    const iop = first(fg.PlaneOrientationSequence)?.ImageOrientationPatient || sharedIop;
    return {
      frame: i + 1,
      segment: segNo === undefined ? undefined : Number(segNo),
      referencedSOPInstanceUID: src?.ReferencedSOPInstanceUID,
      referencedFrameNumber: src?.ReferencedFrameNumber === undefined ? null : Number(src.ReferencedFrameNumber),
      imagePositionPatient: ipp ? num(ipp) : null,
      imageOrientationPatient: iop ? num(iop) : null,
    };
  });
}

let dumpDir = null; // --dump DIR: write OHIF's labelmaps (for scripts/viewers/render_overlays.py)

function dumpLabelmaps(result, imageIds, name) {
  asArray(result.labelMapImages).forEach((layer, l) => {
    asArray(layer).forEach((img, idx) => {
      const sop = images.get(imageIds[idx])?.SOPInstanceUID;
      const px = img.getPixelData ? img.getPixelData() : img.voxelManager?.getScalarData();
      if (!sop || !px || !px.some(v => v)) return;
      const dir = path.join(dumpDir, name);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `${sop}.${l}.u8`), Buffer.from(Uint8Array.from(px)));
    });
  });
}

function summariseLabelmaps(result, imageIds) {
  // labelMapImages: one array per layer (several when segments overlap), each one
  // labelmap image per referenced image id; pixel value = segment number.
  const perSource = {};
  asArray(result.labelMapImages).forEach(layer => {
    asArray(layer).forEach((img, idx) => {
      const sop = images.get(imageIds[idx])?.SOPInstanceUID;
      const px = img.getPixelData ? img.getPixelData() : img.voxelManager?.getScalarData();
      if (!sop || !px) return;
      for (let k = 0; k < px.length; k++) {
        const v = px[k];
        if (!v) continue;
        perSource[sop] = perSource[sop] || {};
        perSource[sop][v] = (perSource[sop][v] || 0) + 1;
      }
    });
  });
  return perSource;
}

async function ohifLoad(arrayBuffer, imageIds, dumpName) {
  try {
    const result = await adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer(
      imageIds,
      arrayBuffer,
      { metadataProvider: metaData, tolerance: 0.001 }
    );
    if (dumpDir && dumpName) dumpLabelmaps(result, imageIds, dumpName);
    return {
      ok: true,
      layers: asArray(result.labelMapImages).length,
      overlappingSegments: Boolean(result.overlappingSegments),
      pixelsPerSourceAndSegment: summariseLabelmaps(result, imageIds),
    };
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e) };
  } finally {
    cache.purgeCache();
  }
}

async function checkSeg(file, seg, arrayBuffer) {
  const name = path.basename(file);
  const segments = asArray(seg.SegmentSequence).map(s => {
    const lab = s.RecommendedDisplayCIELabValue ? num(s.RecommendedDisplayCIELabValue) : null;
    if (!lab) fail(`${name}: segment ${s.SegmentNumber} has no Recommended Display CIELab Value (OHIF would pick its own colour)`);
    return {
      number: Number(s.SegmentNumber),
      label: s.SegmentLabel,
      algorithmType: s.SegmentAlgorithmType,
      algorithmName: s.SegmentAlgorithmName,
      category: code(s.SegmentedPropertyCategoryCodeSequence),
      type: code(s.SegmentedPropertyTypeCodeSequence),
      typeModifier: code(first(s.SegmentedPropertyTypeCodeSequence)?.SegmentedPropertyTypeModifierCodeSequence),
      anatomicRegion: code(s.AnatomicRegionSequence),
      trackingId: s.TrackingID,
      trackingUID: s.TrackingUID,
      cielab: lab,
      ohifRGB: lab ? dicomlabToRGB(lab) : null,
    };
  });
  const numbers = segments.map(s => s.number);
  const frames = segFrames(seg);
  const refSeries = asArray(seg.ReferencedSeriesSequence);
  if (!refSeries.length) fail(`${name}: no ReferencedSeriesSequence (OHIF: "ReferencedSeriesSequence is missing for the SEG")`);
  const seriesUID = first(refSeries)?.SeriesInstanceUID;
  const refInstances = asArray(first(refSeries)?.ReferencedInstanceSequence).map(r => r.ReferencedSOPInstanceUID);
  for (const f of frames) {
    if (!numbers.includes(f.segment)) fail(`${name} frame ${f.frame}: segment ${f.segment} not in SegmentSequence`);
    const imageId = bySop.get(f.referencedSOPInstanceUID);
    if (!imageId) {
      fail(`${name} frame ${f.frame}: source ${f.referencedSOPInstanceUID} not among the source images`);
      continue;
    }
    const src = images.get(imageId);
    f.sourceInstanceNumber = Number(src.InstanceNumber);
    if (src.SeriesInstanceUID !== seriesUID) fail(`${name} frame ${f.frame}: source image is in series ${src.SeriesInstanceUID}, the SEG references ${seriesUID}`);
    if (!refInstances.includes(f.referencedSOPInstanceUID)) fail(`${name} frame ${f.frame}: source not listed in ReferencedInstanceSequence`);
    if (!f.imagePositionPatient || !close(f.imagePositionPatient, num(src.ImagePositionPatient), TOL_MM)) {
      fail(`${name} frame ${f.frame}: ImagePositionPatient ${f.imagePositionPatient} != source ${src.ImagePositionPatient}`);
    }
    if (!f.imageOrientationPatient || !close(f.imageOrientationPatient, num(src.ImageOrientationPatient), 1e-4)) {
      fail(`${name} frame ${f.frame}: ImageOrientationPatient differs from its source image`);
    }
    if (seg.Rows !== src.Rows || seg.Columns !== src.Columns) fail(`${name}: Rows/Columns differ from the source image`);
  }
  const fractional = seg.SegmentationType === 'FRACTIONAL';
  const stackSops = [...new Set(frames.map(f => f.referencedSOPInstanceUID))];
  const stackIds = stackSops.map(s => bySop.get(s)).filter(Boolean);
  const series = ohifSeriesImageIds(seriesUID);
  const report = {
    file: name,
    kind: 'SEG',
    seriesDescription: seg.SeriesDescription,
    seriesNumber: Number(seg.SeriesNumber),
    instanceNumber: Number(seg.InstanceNumber),
    segmentationType: seg.SegmentationType,
    referencedSeries: seriesUID,
    segments,
    frames: frames.map(f => ({ ...f, imageOrientationPatient: undefined })),
    ohifStack: stackIds.length ? await ohifLoad(arrayBuffer, stackIds, name) : { ok: false, error: 'no source images' },
    ohifSeries: {
      displaySetImages: series.imageIds.length,
      oneOrientation: series.oneOrientation,
      ...(await ohifLoad(arrayBuffer, series.imageIds)),
    },
  };
  if (!report.ohifStack.ok) {
    if (fractional && /Fractional/i.test(report.ohifStack.error)) {
      limitations.push(`${name}: OHIF 3.13.2 refuses FRACTIONAL SEGs with values other than 0/max: "${report.ohifStack.error}"`);
    } else {
      fail(`${name}: does not load on its own stack: ${report.ohifStack.error}`);
    }
  }
  if (!report.ohifSeries.ok) {
    limitations.push(`${name}: on OHIF 3.13.2's display set of series ${seriesUID} (${series.imageIds.length} images, one orientation: ${series.oneOrientation}): "${report.ohifSeries.error}"`);
  }
  return report;
}

// ---------------------------------------------------------------- SR
const CV = {
  imagingMeasurementReport: '126000',
  imagingMeasurements: '126010',
  measurementGroup: '125007',
  trackingIdentifier: '112039',
  trackingUniqueIdentifier: '112040',
  imageLibrary: '111028',
  imageLibraryGroup: '126200',
  findingSite: '363698007',
};
const concept = item => first(item.ConceptNameCodeSequence) || {};

function checkSr(file, sr) {
  const name = path.basename(file);
  const report = { file: name, kind: 'SR', seriesDescription: sr.SeriesDescription, groups: [], imageLibrary: [] };
  const template = first(sr.ContentTemplateSequence)?.TemplateIdentifier;
  if (String(template) !== '1500') fail(`${name}: ContentTemplateSequence TemplateIdentifier is ${template}, not 1500`);
  if (concept(sr).CodeValue !== CV.imagingMeasurementReport) {
    fail(`${name}: root concept ${concept(sr).CodeValue} is not 126000; OHIF would show no measurements`);
    return report;
  }
  const root = asArray(sr.ContentSequence);
  const library = root.find(i => concept(i).CodeValue === CV.imageLibrary);
  const libGroup = asArray(library?.ContentSequence).find(i => concept(i).CodeValue === CV.imageLibraryGroup);
  for (const item of asArray(libGroup?.ContentSequence)) {
    for (const ref of asArray(item.ReferencedSOPSequence)) {
      report.imageLibrary.push(ref.ReferencedSOPInstanceUID);
      if (!bySop.has(ref.ReferencedSOPInstanceUID)) fail(`${name}: image library entry ${ref.ReferencedSOPInstanceUID} is not a source image`);
    }
  }
  const measurements = root.find(i => concept(i).CodeValue === CV.imagingMeasurements);
  if (!measurements) {
    fail(`${name}: no Imaging Measurements container`);
    return report;
  }
  const groups = asArray(measurements.ContentSequence).filter(i => concept(i).CodeValue === CV.measurementGroup);
  const merged = new Map();
  for (const g of groups) {
    const items = asArray(g.ContentSequence);
    const uidItem = items.find(i => concept(i).CodeValue === CV.trackingUniqueIdentifier);
    if (!uidItem) {
      fail(`${name}: a measurement group has no Tracking Unique Identifier (OHIF throws on it)`);
      continue;
    }
    const key = uidItem.UID;
    if (!merged.has(key)) merged.set(key, { groups: 0, items: [] });
    const m = merged.get(key);
    m.groups += 1;
    m.items.push(...(m.groups === 1 ? items : items.filter(i => concept(i).CodeValue !== CV.trackingUniqueIdentifier)));
  }
  for (const [uid, { groups: n, items }] of merged) {
    const trackingId = items.find(i => concept(i).CodeValue === CV.trackingIdentifier)?.TextValue;
    const firstUidref = items.find(i => i.ValueType === 'UIDREF');
    const out = { trackingIdentifier: trackingId, trackingUniqueIdentifier: uid, mergedGroups: n, labels: [], droppedNumLabels: [], coords: [] };
    if (!trackingId) fail(`${name}: group ${uid} has no Tracking Identifier TEXT`);
    if (firstUidref?.UID !== uid) {
      out.ohifTrackingUID = firstUidref?.UID;
      fail(`${name}: group ${trackingId}: OHIF takes the first UIDREF item (${firstUidref?.UID}) as its tracking UID, not ${uid}`);
    }
    const scoords = items.filter(i => i.ValueType === 'SCOORD' || i.ValueType === 'SCOORD3D');
    out.geometric = scoords.length > 0;
    for (const s of scoords) {
      const ref = first(first(s.ContentSequence)?.ReferencedSOPSequence);
      const c = { valueType: s.ValueType, graphicType: s.GraphicType, points: asArray(s.GraphicData).length / 2, graphicData: num(s.GraphicData), referencedSOPInstanceUID: ref?.ReferencedSOPInstanceUID, referencedFrameNumber: ref?.ReferencedFrameNumber ?? null };
      out.coords.push(c);
      const imageId = ref && bySop.get(ref.ReferencedSOPInstanceUID);
      if (!imageId) {
        fail(`${name}: group ${trackingId}: SCOORD references ${c.referencedSOPInstanceUID}, not a source image (OHIF would never draw it)`);
      } else {
        const ds = images.get(imageId);
        const xs = asArray(s.GraphicData).filter((_, k) => k % 2 === 0).map(Number);
        const ys = asArray(s.GraphicData).filter((_, k) => k % 2 === 1).map(Number);
        if (Math.min(...xs) < 0 || Math.max(...xs) > ds.Columns || Math.min(...ys) < 0 || Math.max(...ys) > ds.Rows) {
          fail(`${name}: group ${trackingId}: SCOORD points fall outside the ${ds.Columns}x${ds.Rows} image`);
        }
        c.sourceInstanceNumber = Number(ds.InstanceNumber);
      }
    }
    for (const item of items.filter(i => i.ValueType === 'NUM')) {
      const mv = first(item.MeasuredValueSequence);
      if (!mv) continue;
      const label = `${concept(item).CodeMeaning}: ${Number(mv.NumericValue).toFixed(2)} ${first(mv.MeasurementUnitsCodeSequence)?.CodeValue}`;
      const sub = asArray(item.ContentSequence);
      if (!out.geometric && sub.length && !sub.some(x => x.ValueType === 'SCOORD' || x.ValueType === 'SCOORD3D')) {
        out.droppedNumLabels.push(label);
      } else {
        out.labels.push(label);
      }
    }
    const site = items.find(i => concept(i).CodeValue === CV.findingSite);
    if (out.geometric && site) out.labels.push(`Finding site: ${first(site.ConceptCodeSequence)?.CodeMeaning}`);
    out.codes = items
      .filter(i => i.ValueType === 'CODE')
      .map(i => `${concept(i).CodeMeaning} = ${first(i.ConceptCodeSequence)?.CodeMeaning}`);
    // OHIF 3.13.2 (_checkIfCanAddMeasurementsToDisplaySet) reads coords[0].ReferencedSOPSequence
    // of every not yet loaded measurement without a guard: a measurement with no SCOORD
    // (coords = []) throws a TypeError there, and the SR display set's load() rejects.
    const hasCoords = out.geometric || items.some(i => i.ValueType === 'NUM' && asArray(i.ContentSequence).some(x => x.ValueType === 'SCOORD' || x.ValueType === 'SCOORD3D'));
    out.ohifThrowsOnLoad = !hasCoords;
    if (!hasCoords) {
      limitations.push(`${name}: group "${trackingId}" has no SCOORD: OHIF 3.13.2 reads coords[0] of it when the SR is loaded and throws a TypeError (the SR does not load)`);
    }
    if (out.droppedNumLabels.length) {
      limitations.push(`${name}: group "${trackingId}": OHIF drops ${out.droppedNumLabels.length} NUM label(s) whose ContentSequence has no SCOORD: ${out.droppedNumLabels.join('; ')}`);
    }
    report.groups.push(out);
  }
  return report;
}

// ---------------------------------------------------------------- main
async function main() {
  const { sources, objects, strict } = parseArgs(process.argv.slice(2));
  loadSources(sources);
  metaData.addProvider(provider, 10000);
  const reports = [];
  for (const file of objects) {
    let parsed;
    try {
      parsed = readDataset(file);
    } catch (e) {
      fail(`${file}: dcmjs cannot parse it: ${e.message}`);
      continue;
    }
    const { ds, arrayBuffer } = parsed;
    if (ds.SOPClassUID === SEG_SOP_CLASS) reports.push(await checkSeg(file, ds, arrayBuffer));
    else if (SR_SOP_CLASSES.has(ds.SOPClassUID)) reports.push(checkSr(file, ds));
    else reports.push({ file: path.basename(file), kind: ds.Modality, skipped: `SOP class ${ds.SOPClassUID}` });
  }
  const out = {
    versions: { dcmjs: '0.52.0', '@cornerstonejs/adapters': '5.6.8', ohif: '3.13.2' },
    sourceImages: images.size,
    objects: reports,
    limitations,
    errors,
  };
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
  for (const l of limitations) console.error(`OHIF LIMITATION: ${l}`);
  for (const e of errors) console.error(`ERROR: ${e}`);
  process.exit(errors.length || (strict && limitations.length) ? 1 : 0);
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
