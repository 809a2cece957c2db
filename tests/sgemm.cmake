# The conv / Gemm / MatMul op tests, the parity tests and the ONNX conformance test again on
# sgemm.c's lower paths (GCAM_ISA=avx2, =generic) and on cblas_sgemm (GCAM_NO_SGEMM=1), so that
# every GEMM dispatch path runs on an AVX-512 machine (the plain tests take the CPU's best path).
# test_ops_sgemm covers the kernels themselves on every path the CPU runs.
foreach(v isa_avx2:GCAM_ISA=avx2 isa_generic:GCAM_ISA=generic blas:GCAM_NO_SGEMM=1)
  string(REPLACE ":" ";" parts ${v})
  list(GET parts 0 tag)
  list(GET parts 1 env)
  add_test(NAME test_ops_conv_${tag} COMMAND test_ops_conv)
  set_tests_properties(test_ops_conv_${tag} PROPERTIES ENVIRONMENT ${env})
  add_test(NAME test_grad_parity_${tag} COMMAND test_grad_parity ${GCAM_GRADS_DIR}/manifest.tsv)
  set_tests_properties(test_grad_parity_${tag} PROPERTIES FIXTURES_REQUIRED grads TIMEOUT 2400 PROCESSORS 2
                       ENVIRONMENT ${env})
  add_test(NAME test_model_parity_${tag} COMMAND test_model_parity ${GCAM_MODELS_DIR}/manifest.tsv)
  set_tests_properties(test_model_parity_${tag} PROPERTIES FIXTURES_REQUIRED models TIMEOUT 1800
                       ENVIRONMENT ${env})
  add_test(NAME onnx_conformance_${tag} COMMAND test_onnx_conformance /usr/share/libonnx-testdata/data)
  set_tests_properties(onnx_conformance_${tag} PROPERTIES TIMEOUT 900 ENVIRONMENT ${env})
endforeach()
