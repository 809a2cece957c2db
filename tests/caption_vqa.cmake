# The demo captioner and VQA model (examples/caption, examples/vqa; issue #19) through the Python
# package against PyTorch with the same weights: greedy captions token for token, Grad-CAM / Guided
# Backprop / Guided Grad-CAM against a float64 reference from the formulas, and the paper's
# localisation claims on 100 generated scenes; the command's own greedy captions and answers on 8
# scenes. Fails (never skips) without torch or onnx.
add_test(NAME caption_vqa_ref COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/caption_vqa_ref.py)
set_tests_properties(caption_vqa_ref PROPERTIES TIMEOUT 300 PROCESSORS 2
  ENVIRONMENT "GRADCAM_LIBRARY=$<TARGET_FILE:gradcam_tool>;GRADCAM_CLI=$<TARGET_FILE:gradcam_cli>;PYTHONPATH=${CMAKE_SOURCE_DIR}/python;PYTHONDONTWRITEBYTECODE=1;OMP_WAIT_POLICY=passive")

# bench/bench_caption.py kept from rotting: a few turns, maps checked, no speed target (a shared CI
# machine's timings say little; `make bench`-style runs use --check).
add_test(NAME caption_bench_smoke COMMAND ${SYSTEM_PYTHON} ${CMAKE_SOURCE_DIR}/bench/bench_caption.py --reps 3)
set_tests_properties(caption_bench_smoke PROPERTIES TIMEOUT 120 PROCESSORS 2
  ENVIRONMENT "GRADCAM_LIBRARY=$<TARGET_FILE:gradcam_tool>;PYTHONPATH=${CMAKE_SOURCE_DIR}/python;PYTHONDONTWRITEBYTECODE=1;OMP_WAIT_POLICY=passive")
