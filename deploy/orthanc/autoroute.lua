-- Orthanc auto-routing to dicom-node: lumbar-spine and sacroiliac-joint MR studies.
--
-- Loaded by Orthanc through "LuaScripts" in orthanc.json (see orthanc.json beside
-- this file and docs/operations.md). When a study has been quiet for "StableAge"
-- seconds, Orthanc calls OnStableStudy; if the study is a lumbar or SIJ MR study,
-- its MR instances that were not sent before are sent to the node in one C-STORE
-- association. Each instance sent is marked with the user metadata
-- "DicomNodeSent" (declared in orthanc.json's "UserMetadata"), so a later stable
-- event sends only late images (the node then re-runs and replaces its results).
-- The node's results (DICOM-SEG, SR) come back into the same study; they are not
-- MR, so they are never sent back to the node.
--
-- Site settings: the modality name below must be a key of "DicomModalities";
-- the patterns are Lua patterns matched against upper-cased BodyPartExamined,
-- StudyDescription and SeriesDescription.

local NODE_MODALITY = "dicom-node"
local SENT_METADATA = "DicomNodeSent"

local PATTERNS = {
  -- lumbar spine (English, German: LWS / LWK)
  "LSPINE", "L%-SPINE", "L SPINE", "LUMB", "LWS", "LWK",
  -- sacroiliac joints (German: ISG / Iliosakralgelenk)
  "SIJ", "SACROIL", "SACRO%-IL", "ISG", "ILIOSAKRAL",
}

local function Matches(value)
  if value == nil or value == "" then
    return false
  end
  local text = string.upper(value)
  for _, pattern in ipairs(PATTERNS) do
    if string.find(text, pattern) ~= nil then
      return true
    end
  end
  return false
end

local function AlreadySent(instanceId)
  local names = ParseJson(RestApiGet('/instances/' .. instanceId .. '/metadata'))
  for _, name in ipairs(names) do
    if name == SENT_METADATA then
      return true
    end
  end
  return false
end

function OnStableStudy(studyId, tags, metadata)
  local study = ParseJson(RestApiGet('/studies/' .. studyId))
  local anyMatch = Matches(study['MainDicomTags']['StudyDescription'])
  local toSend = {}
  for _, seriesId in ipairs(study['Series']) do
    local series = ParseJson(RestApiGet('/series/' .. seriesId))
    local t = series['MainDicomTags']
    if t['Modality'] == 'MR' then
      if Matches(t['BodyPartExamined']) or Matches(t['SeriesDescription']) then
        anyMatch = true
      end
      for _, instanceId in ipairs(series['Instances']) do
        if not AlreadySent(instanceId) then
          table.insert(toSend, instanceId)
        end
      end
    end
  end
  if not anyMatch or #toSend == 0 then
    return
  end
  print('dicom-node auto-routing: study ' .. studyId .. ', ' .. #toSend .. ' MR instances')
  local request = { ['Resources'] = toSend, ['Synchronous'] = true }
  local ok, err = pcall(RestApiPost, '/modalities/' .. NODE_MODALITY .. '/store', DumpJson(request, true))
  if not ok then
    -- not marked: the next stable event of this study (or a manual send) tries again
    print('dicom-node auto-routing FAILED for study ' .. studyId .. ': ' .. tostring(err))
    return
  end
  for _, instanceId in ipairs(toSend) do
    RestApiPut('/instances/' .. instanceId .. '/metadata/' .. SENT_METADATA, 'yes')
  end
end
