// Parallax: run unmodified ONNX models fast on edge devices. Umbrella header.
#ifndef PARALLAX_PARALLAX_H_
#define PARALLAX_PARALLAX_H_

#include "parallax/dtype.h"
#include "parallax/model.h"
#include "parallax/session.h"
#include "parallax/status.h"
#include "parallax/tensor.h"

#endif  // PARALLAX_PARALLAX_H_
