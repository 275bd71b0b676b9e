// Small enhancements of the filing form; it works without them.
(function () {
  var form = document.querySelector("form.filing");
  if (!form) return;
  // A second tap while the first is on its way sends nothing more (the server would
  // answer with the same complaint anyway: the form carries its own id).
  form.addEventListener("submit", function (event) {
    var button = document.getElementById("submit");
    if (form.dataset.sent) { event.preventDefault(); return; }
    form.dataset.sent = "1";
    button.setAttribute("aria-disabled", "true");
    button.textContent = "신청하는 중…";
  });
  var locate = document.getElementById("locate");
  var status = document.getElementById("position-status");
  if (!navigator.geolocation || !locate) return;
  locate.hidden = false;
  locate.addEventListener("click", function () {
    status.textContent = "위치를 찾는 중…";
    navigator.geolocation.getCurrentPosition(function (p) {
      document.getElementById("lat").value = p.coords.latitude.toFixed(6);
      document.getElementById("lon").value = p.coords.longitude.toFixed(6);
      status.textContent = "위치를 함께 보내요.";
    }, function () {
      status.textContent = "위치를 읽지 못했어요. 주소나 행정동을 적어 주세요.";
    }, {timeout: 10000});
  });
})();
